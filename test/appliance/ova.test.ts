/**
 * The OVA's parts that run without a hypervisor: the OVF descriptor parses and offers the
 * vApp properties; an ovf-env.xml fixture applied to a temp root gives the right
 * authorized_keys, hostname and network files; every shell script passes shellcheck.
 */
import t from 'tap';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { OVF_KEYS, applyFirstBoot, netplanFor, parseOvfEnvironment } from '../../src/appliance/firstboot/firstboot.js';
import { AIRGAP } from '../helpers/appliance.js';
import { runAirgap } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

const repo = join(import.meta.dirname, '..', '..');
const fixture = join(repo, 'test', 'fixtures', 'ovf-env.xml');

t.test('the OVF descriptor parses and offers every vApp property first boot reads', async (t) => {
  const xml = await readFile(join(repo, 'packer', 'ovf', 'airgap.ovf'), 'utf8');
  const doc = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, attributeNamePrefix: '@' }).parse(xml) as {
    Envelope: { VirtualSystem: { ProductSection: { Property: Array<{ '@key': string; '@userConfigurable': string; Label: string }> }; VirtualHardwareSection: { '@transport': string; Item: Array<Record<string, unknown>> } } };
  };
  const props = doc.Envelope.VirtualSystem.ProductSection.Property;
  t.same(props.map((p) => p['@key']).sort(), Object.values(OVF_KEYS).sort());
  for (const p of props) {
    t.equal(p['@userConfigurable'], 'true', `${p['@key']} is asked in the wizard`);
    t.ok(p.Label, `${p['@key']} has a label`);
  }
  const hw = doc.Envelope.VirtualSystem.VirtualHardwareSection;
  t.match(hw['@transport'], /com\.vmware\.guestInfo/);
  t.match(hw['@transport'], /iso/);
  const quantity = (type: number) => hw.Item.find((i) => i.ResourceType === type)?.VirtualQuantity;
  t.equal(quantity(3), 2, '2 vCPU');
  t.equal(quantity(4), 4096, '4 GB');
  const cdrom = hw.Item.find((i) => i.ResourceType === 15);
  const controller = hw.Item.find((i) => cdrom && i.InstanceID === cdrom.Parent);
  t.equal(controller?.ResourceType, 5, 'the CD-ROM that carries the OVF environment ISO sits on an IDE controller');
  const disk = hw.Item.find((i) => i.ResourceType === 17);
  t.equal(hw.Item.find((i) => disk && i.InstanceID === disk.Parent)?.ResourceType, 6, 'the disk sits on the SCSI controller');
  t.equal(XMLValidator.validate(xml), true, 'well-formed XML');
});

t.test('an ovf-env.xml applied to a temp root writes keys, host name, network and sshd settings', async (t) => {
  const root = await tempDir(t, 'airgap-firstboot-');
  const settings = parseOvfEnvironment(await readFile(fixture, 'utf8'));
  t.equal(settings.publicKeys.length, 2);
  t.equal(settings.hostname, 'airgap-repo01');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1001:Ubuntu:/home/ubuntu:/bin/bash\n');
  t.same(settings.network, { address: '10.20.30.40', prefix: 24, gateway: '10.20.30.1', dns: ['10.20.30.2', '10.20.30.3'] });

  const r = await execa(AIRGAP, ['firstboot', '--ovf-env', fixture, '--root', root, '--json']);
  const { written } = JSON.parse(r.stdout) as { written: string[] };
  t.equal(written.length, 5);
  const keys = await readFile(join(root, 'home', 'ubuntu', '.ssh', 'authorized_keys'), 'utf8');
  t.equal(keys, `${settings.publicKeys.join('\n')}\n`);
  t.match(keys, /^ssh-ed25519 AAAA\S+ admin@site\nssh-rsa AAAA\S+ backup@site\n$/);
  t.equal((await stat(join(root, 'home', 'ubuntu', '.ssh', 'authorized_keys'))).mode & 0o777, 0o600);
  t.equal((await stat(join(root, 'home', 'ubuntu', '.ssh'))).mode & 0o777, 0o700);
  if (process.getuid?.() === 0) {
    const owner = await stat(join(root, 'home', 'ubuntu', '.ssh', 'authorized_keys'));
    t.same([owner.uid, owner.gid], [1000, 1001], 'authorized_keys belongs to ubuntu (sshd StrictModes)');
    t.equal((await stat(join(root, 'home', 'ubuntu', '.ssh'))).uid, 1000, '.ssh belongs to ubuntu');
  }
  t.equal(await readFile(join(root, 'etc', 'hostname'), 'utf8'), 'airgap-repo01\n');
  t.match(await readFile(join(root, 'etc', 'hosts'), 'utf8'), /^127\.0\.1\.1 airgap-repo01$/m);
  const netplan = await readFile(join(root, 'etc', 'netplan', '60-airgap.yaml'), 'utf8');
  t.match(netplan, /addresses: \[10\.20\.30\.40\/24\]/);
  t.match(netplan, /via: 10\.20\.30\.1/);
  t.match(netplan, /addresses: \[10\.20\.30\.2, 10\.20\.30\.3\]/);
  t.equal((await stat(join(root, 'etc', 'netplan', '60-airgap.yaml'))).mode & 0o777, 0o600);
  t.match(await readFile(join(root, 'etc', 'ssh', 'sshd_config.d', '00-airgap.conf'), 'utf8'), /^PasswordAuthentication no$/m);

  const again = await execa(AIRGAP, ['firstboot', '--ovf-env', fixture, '--root', root]);
  t.equal(again.exitCode, 0);
  t.equal((await readFile(join(root, 'etc', 'hosts'), 'utf8')).match(/127\.0\.1\.1/g)?.length, 1, 'idempotent: one hosts line');
});

t.test('DHCP when no address is given; bad values are refused with a sentence', async (t) => {
  const env = (props: Record<string, string>) =>
    `<?xml version="1.0"?><Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"><PropertySection>${Object.entries(props).map(([k, v]) => `<Property oe:key="${k}" oe:value="${v}"/>`).join('')}</PropertySection></Environment>`;
  const dhcp = parseOvfEnvironment(env({ 'public-keys': '', hostname: 'box' }));
  t.equal(dhcp.network, undefined);
  const root = await tempDir(t, 'airgap-firstboot-');
  await applyFirstBoot(root, dhcp);
  t.notOk(await stat(join(root, 'etc', 'netplan', '60-airgap.yaml')).then(() => true, () => false), 'no netplan file for DHCP');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'passwd'), 'admin:x:1200:1200::/srv/admin:/bin/bash\n');
  const written = await applyFirstBoot(root, parseOvfEnvironment(env({ 'public-keys': 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x' })), 'admin');
  t.same(written.slice(0, 1), [join(root, 'srv', 'admin', '.ssh', 'authorized_keys')], 'the home folder comes from passwd');
  t.throws(() => parseOvfEnvironment(env({ 'network.address': '10.0.0.5' })), /must be an address with its prefix/);
  t.throws(() => parseOvfEnvironment(env({ 'network.address': '10.0.0.5/24', 'network.gateway': 'router' })), /not an IP address/);
  t.throws(() => parseOvfEnvironment(env({ hostname: 'bad_name' })), /not a valid host name/);
  t.throws(() => parseOvfEnvironment(env({ 'public-keys': 'hello world' })), /not an SSH public key/);
  t.throws(() => parseOvfEnvironment('<html/>'), /not an OVF environment/);
  const bad = join(root, 'bad.xml');
  await writeFile(bad, env({ hostname: 'bad_name' }));
  const r = await runAirgap(['firstboot', '--ovf-env', bad, '--root', root]);
  t.equal(r.exitCode, 2);
  t.match(r.stderr, /airgap: error: 'bad_name' is not a valid host name/);
});

t.test('an IPv6 static network gets its address, default route and DNS in netplan', async (t) => {
  const env = `<?xml version="1.0"?><Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"><PropertySection>
    <Property oe:key="network.address" oe:value="fd00:10::5/64"/><Property oe:key="network.gateway" oe:value="fd00:10::1"/><Property oe:key="network.dns" oe:value="fd00:10::53, 10.0.0.53"/></PropertySection></Environment>`;
  const settings = parseOvfEnvironment(env);
  t.same(settings.network, { address: 'fd00:10::5', prefix: 64, gateway: 'fd00:10::1', dns: ['fd00:10::53', '10.0.0.53'] });
  const yaml = netplanFor(settings.network!);
  t.match(yaml, /addresses: \[fd00:10::5\/64\]/);
  t.match(yaml, /- to: default\n\s+via: fd00:10::1/);
  t.match(yaml, /nameservers:\n\s+addresses: \[fd00:10::53, 10\.0\.0\.53\]/);
  t.match(yaml, /dhcp6: false/);
  t.match(yaml, /accept-ra: false/, 'no SLAAC address or route beside the static one');
  t.throws(() => parseOvfEnvironment(env.replace('fd00:10::5/64', 'fd00:10::5/129')), /must be an address with its prefix/);
});

t.test('every shell script passes shellcheck', async (t) => {
  const scripts: string[] = [];
  for (const dir of ['scripts', join('packer', 'scripts'), join('packer', 'smoke')]) {
    for (const name of await readdir(join(repo, dir)).catch(() => [] as string[])) {
      const path = join(repo, dir, name);
      const head = await readFile(path, 'utf8').then((s) => s.slice(0, 30), () => '');
      if (head.startsWith('#!/bin/sh') || head.startsWith('#!/usr/bin/env bash') || head.startsWith('#!/bin/bash') || name.endsWith('.sh')) scripts.push(path);
    }
  }
  t.ok(scripts.length >= 5, `${scripts.length} scripts`);
  const r = await execa('shellcheck', ['-x', ...scripts], { reject: false, all: true });
  t.equal(r.exitCode, 0, String(r.all));
});

t.test('the Packer template validates with Debian\'s Packer; the autoinstall and OVA pieces are there', async (t) => {
  const r = await execa('packer', ['validate', '-syntax-only', join(repo, 'packer')], { reject: false, all: true });
  t.equal(r.exitCode, 0, String(r.all));
  const template = await readFile(join(repo, 'packer', 'airgap.pkr.hcl'), 'utf8');
  t.match(template, /source "vsphere-iso" "airgap"/);
  t.match(template, /source "qemu" "airgap"/);
  t.match(template, /disk_size\s+= local\.disk_mb/);
  t.match(template, /disk_thin_provisioned = true/);
  t.match(template, /cpus\s+= 2/);
  t.match(template, /memory_mb\s+= 4096/);
  t.match(template, /scripts\/provision\.sh[\s\S]*scripts\/seal\.sh/, 'provisioned, then sealed');
  t.match(await readFile(join(repo, 'packer', 'http', 'user-data'), 'utf8'), /^#cloud-config\n[\s\S]*^autoinstall:/m);
  t.match(await readFile(join(repo, 'packer', 'files', 'nftables.conf'), 'utf8'), /tcp dport \{ 22, 80, 443, 5000, 8000 \} accept/);
});
