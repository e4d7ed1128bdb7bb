/**
 * The OVA smoke boot (`make ova-smoke`; not part of `make test`): takes the .ova that
 * packer/smoke/build-disk.sh and packer/scripts/make-ova.sh made, checks its layout (OVF
 * first, manifest digests, a stream-optimised VMDK whose size the OVF states), boots that
 * VMDK under qemu-system-x86_64 (software emulation; KVM with --accel kvm or
 * AIRGAP_SMOKE_ACCEL=kvm) with
 * an OVF environment ISO as vCenter attaches it (a fresh SSH key, a host name, a static
 * address), logs in with ssh2 as `ubuntu` using that key, runs `sudo airgap-setup <vm-ip>`,
 * checks what it prints against the running services through QEMU's port forwards on
 * 127.0.0.1 (real TLS with the printed CA), runs a signed .bin made on this side on the box
 * and gets its image, chart, pack and files back with skopeo and HTTPS, checks that the
 * firewall keeps other ports closed, and powers the VM off.
 *
 *   node dist/test/smoke/ova-smoke.js --ova FILE.ova [--work DIR] [--boot-timeout SECONDS] [--accel kvm|tcg] [--keep]
 *
 * The guest network is QEMU's user-mode network with `restrict=on`: the VM reaches nothing
 * outside, and the host talks to it only through forwards bound to 127.0.0.1.
 * Exit code 0 when every check passed, 1 otherwise; progress lines go to stdout.
 */
import { constants, existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { checkServerIdentity } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import ssh2 from 'ssh2';
import { freePort } from '../helpers/registry.js';
import { waitFor } from '../helpers/appliance.js';
import { hashFile } from '../../src/build/artifacts.js';
import { makeBusyboxLayout, makeChart, makeFiles, makePack, writeBundle } from '../helpers/fixtures.js';

const { Client, utils: sshUtils } = ssh2;
type Client = InstanceType<typeof Client>;

/** The static network the OVF environment gives the VM (QEMU's user network is 10.0.2.0/24). */
const VM_IP = '10.0.2.20';
const VM_NETWORK = { address: `${VM_IP}/24`, gateway: '10.0.2.2', dns: '10.0.2.3' };
const VM_HOSTNAME = 'airgap-smoke';
/** Guest ports forwarded from 127.0.0.1: SSH, HTTP, HTTPS, image and pack registries, and
 * one the firewall must keep closed. */
const GUEST_PORTS = [22, 80, 443, 5000, 8000, 9000] as const;
const CLOSED_PORT = 9000;

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

/** `scripts/airgap` of this checkout, from test/smoke/ (tap) or dist/test/smoke/ (compiled). */
const AIRGAP = [join(import.meta.dirname, '..', '..'), join(import.meta.dirname, '..', '..', '..')]
  .map((root) => join(root, 'scripts', 'airgap'))
  .find((path) => existsSync(path)) ?? 'airgap';

const checks: Check[] = [];
const started = Date.now();
const stamp = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s`;
const say = (line: string) => process.stdout.write(`${stamp()}  ${line}\n`);

function check(name: string, ok: boolean, detail?: string): boolean {
  checks.push({ name, ok, ...(detail ? { detail } : {}) });
  say(`${ok ? 'ok    ' : 'FAILED'} ${name}${!ok && detail ? `\n          ${detail.split('\n').join('\n          ')}` : ''}`);
  return ok;
}

/** Unpacks the OVA and checks what vCenter's "Deploy OVF Template" relies on. Returns the VMDK path. */
async function checkOva(ova: string, dir: string): Promise<string> {
  const listing = (await execa('tar', ['-tf', ova])).stdout.split('\n').filter(Boolean);
  check('the OVA is a tar with the .ovf first, then the disk, then the manifest', listing.length === 3 && listing[0]!.endsWith('.ovf') && listing[1]!.endsWith('.vmdk') && listing[2]!.endsWith('.mf'), listing.join(', '));
  await execa('tar', ['-xf', ova, '-C', dir]);
  const [ovfName, vmdkName, mfName] = listing as [string, string, string];
  const manifest = await readFile(join(dir, mfName), 'utf8');
  for (const name of [ovfName, vmdkName]) {
    const want = new RegExp(`^SHA256\\(${name.replace(/\./g, '\\.')}\\)= ([0-9a-f]{64})$`, 'm').exec(manifest)?.[1];
    check(`manifest digest of ${name} matches`, `sha256:${want}` === (await hashFile(join(dir, name))).digest, `manifest says ${want ?? 'nothing'}`);
  }
  const xml = await readFile(join(dir, ovfName), 'utf8');
  const ovf = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, attributeNamePrefix: '@' }).parse(xml) as {
    Envelope: { References: { File: { '@href': string; '@size': string } }; VirtualSystem: { ProductSection: { Property: Array<{ '@key': string }> } } };
  };
  const file = ovf.Envelope.References.File;
  const vmdkBytes = (await stat(join(dir, vmdkName))).size;
  check('the OVF names the disk file and its size', file['@href'] === vmdkName && Number(file['@size']) === vmdkBytes, `${file['@href']} ${file['@size']} vs ${vmdkName} ${vmdkBytes}`);
  const keys = ovf.Envelope.VirtualSystem.ProductSection.Property.map((p) => p['@key']);
  check('the OVF offers the vApp properties', ['public-keys', 'hostname', 'network.address', 'network.gateway', 'network.dns'].every((k) => keys.includes(k)), keys.join(', '));
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', join(dir, vmdkName)])).stdout) as { format: string; 'virtual-size': number; 'format-specific'?: { data?: { 'create-type'?: string } } };
  check('the disk is a stream-optimised VMDK', info.format === 'vmdk' && info['format-specific']?.data?.['create-type'] === 'streamOptimized', JSON.stringify(info['format-specific']?.data?.['create-type']));
  say(`disk: ${(vmdkBytes / 2 ** 20).toFixed(0)} MiB in the OVA, ${(info['virtual-size'] / 2 ** 30).toFixed(0)} GiB virtual`);
  return join(dir, vmdkName);
}

/** The OVF environment document vCenter passes to the VM (DMTF DSP0243). */
function ovfEnvironment(publicKey: string): string {
  const props: Record<string, string> = {
    'public-keys': publicKey,
    hostname: VM_HOSTNAME,
    'network.address': VM_NETWORK.address,
    'network.gateway': VM_NETWORK.gateway,
    'network.dns': VM_NETWORK.dns,
  };
  const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" oe:id="">
  <PlatformSection><Kind>QEMU (airgap smoke boot)</Kind></PlatformSection>
  <PropertySection>
${Object.entries(props).map(([k, v]) => `    <Property oe:key="${k}" oe:value="${escape(v)}"/>`).join('\n')}
  </PropertySection>
</Environment>
`;
}

interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Logs in as `ubuntu` with `privateKey`; resolves the client and the sha256 of the host key. */
function connect(port: number, privateKey: string, timeoutMs: number): Promise<{ client: Client; hostKey: string }> {
  return new Promise((resolvePromise, reject) => {
    const client = new Client();
    let hostKey = '';
    client.once('ready', () => resolvePromise({ client, hostKey }));
    // ssh2 may report more than one error for one failed attempt; the first one counts.
    client.on('error', (error) => (client.end(), reject(error)));
    client.connect({
      host: '127.0.0.1', port, username: 'ubuntu', privateKey, readyTimeout: timeoutMs,
      // A fresh VM: any host key is taken, and remembered to compare across boots.
      hostVerifier: (key: Buffer) => ((hostKey = createHash('sha256').update(key).digest('base64')), true),
    });
  });
}

function run(client: Client, command: string, timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`'${command}' took longer than ${timeoutMs / 1000} s`)), timeoutMs);
    client.exec(command, (error, channel) => {
      if (error) return clearTimeout(timer), reject(error);
      let stdout = '';
      let stderr = '';
      channel.on('data', (d: Buffer) => (stdout += d.toString()));
      channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      channel.on('close', (code: number | null) => (clearTimeout(timer), resolvePromise({ code, stdout, stderr })));
    });
  });
}

/**
 * The authentication methods sshd offers `ubuntu` after the "none" request (RFC 4252 §5.2),
 * whatever the account's password is.
 */
function offeredAuthMethods(port: number): Promise<string[]> {
  return new Promise((resolvePromise, reject) => {
    const client = new Client();
    let offered: string[] | undefined;
    const timer = setTimeout(() => (client.end(), reject(new Error('no answer to the auth request within 30 s'))), 30_000);
    client.on('error', (error) => (clearTimeout(timer), offered ? resolvePromise(offered) : reject(new Error(`no list of methods: ${error.message}`))));
    client.once('ready', () => (clearTimeout(timer), client.end(), reject(new Error('"none" authentication was accepted'))));
    client.connect({
      host: '127.0.0.1', port, username: 'ubuntu', readyTimeout: 30_000, hostVerifier: () => true,
      authHandler: (methodsLeft: string[] | null, _partial: boolean | null, next: (method: unknown) => void) => {
        if (methodsLeft === null) return next('none');
        offered = methodsLeft;
        return next(false);
      },
    } as Parameters<Client['connect']>[0]);
  });
}

interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * GET over HTTP or HTTPS. With `ca`, the server certificate must chain to it and name
 * `identity` (an IP address or DNS name) among its SANs, whatever host the URL dials.
 */
function get(url: string, options: { ca?: string; identity?: string; auth?: string; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  return new Promise((resolvePromise, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, {
      ...(options.ca ? { ca: options.ca, checkServerIdentity: (host: string, cert: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(options.identity ?? host, cert) } : {}),
      ...(options.auth ? { headers: { authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` } } : {}),
      timeout: options.timeoutMs ?? 30_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', reject);
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

interface SmokeBundle {
  bin: string;
  publicKey: string;
  imageDigest: string;
  files: Record<string, Buffer>;
}

/** A small signed release made on this side, as an admin's connected machine would: a
 * busybox image (umoci), a chart, a pack and files, `airgap keygen` and `airgap build`. */
async function buildBundle(dir: string): Promise<SmokeBundle> {
  await mkdir(join(dir, 'charts'), { recursive: true });
  const imageDigest = await makeBusyboxLayout(join(dir, 'images'), dir);
  const chart = await makeChart(join(dir, 'charts'), 'hello', '0.1.0');
  const pack = await makePack(join(dir, 'packs'), 'cilium', '1.14.2');
  const files = await makeFiles(join(dir, 'files'));
  const bundle = await writeBundle(dir, {
    name: 'smoke',
    version: '1.0.0',
    images: [{ source: `oci:${join(dir, 'images')}:busybox`, target: 'library/busybox:1.35' }],
    charts: [{ source: chart }],
    packs: [{ source: pack }],
    files: [{ source: `${join(dir, 'files')}/`, target: 'files/' }],
  });
  await execa(AIRGAP, ['keygen', '--out', join(dir, 'keys')], { timeout: 60_000 });
  const bin = join(dir, 'airgap-v1.0.0.bin');
  await execa(AIRGAP, ['build', bundle, '--out', bin, '--key', join(dir, 'keys', 'airgap-signing.key')], { timeout: 300_000 });
  return { bin, publicKey: join(dir, 'keys', 'airgap-signing.pub'), imageDigest, files };
}

function upload(client: Client, local: string, remote: string, timeoutMs = 300_000): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`copying ${local} took longer than ${timeoutMs / 1000} s`)), timeoutMs);
    client.sftp((error, sftp) => {
      if (error) return clearTimeout(timer), reject(error);
      sftp.fastPut(local, remote, (putError) => (clearTimeout(timer), sftp.end(), putError ? reject(putError) : resolvePromise()));
    });
  });
}

/** `airgap status --json` once the daemon answers (it starts at boot); gives up after 2 min. */
async function daemonStatus(client: Client): Promise<ExecResult> {
  let status: ExecResult = { code: null, stdout: '', stderr: '' };
  await waitFor(async () => (status = await run(client, 'sudo -n airgap status --json')).code === 0, 120);
  return status;
}

async function kvmUsable(): Promise<boolean> {
  return access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ova: { type: 'string' },
      work: { type: 'string' },
      'boot-timeout': { type: 'string', default: '1200' },
      keep: { type: 'boolean', default: false },
      accel: { type: 'string' },
    },
  });
  if (!values.ova) throw new Error('--ova FILE.ova is required (make ova-smoke builds it)');
  const ova = resolve(values.ova);
  const work = values.work ? resolve(values.work) : await mkdtemp(join(tmpdir(), 'airgap-ova-smoke-'));
  await mkdir(work, { recursive: true });
  for (const old of await readdir(work)) if (/\.(vmdk|ovf|mf|qcow2|iso|log|xml)$|^(id_|ovf-env|bundle$|certs$)/.test(old)) await rm(join(work, old), { recursive: true, force: true });

  say(`checking ${ova}`);
  const vmdk = await checkOva(ova, work);

  const overlay = join(work, 'boot.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vmdk, '-F', 'vmdk', overlay]);
  const key = sshUtils.generateKeyPairSync('ed25519', { comment: 'airgap-ova-smoke' });
  await writeFile(join(work, 'id_ed25519'), key.private, { mode: 0o600 });
  await writeFile(join(work, 'id_ed25519.pub'), `${key.public}\n`);
  const envDir = join(work, 'ovf-env');
  await mkdir(envDir, { recursive: true });
  await writeFile(join(envDir, 'ovf-env.xml'), ovfEnvironment(key.public));
  const iso = join(work, 'ovf-env.iso');
  // vCenter's ISO transport: a CD-ROM labelled "OVF ENV" with ovf-env.xml at its root.
  await execa('genisoimage', ['-quiet', '-V', 'OVF ENV', '-J', '-r', '-o', iso, envDir]);

  const forwards = new Map<number, number>();
  for (const guest of GUEST_PORTS) forwards.set(guest, await freePort());
  const hostfwd = [...forwards].map(([guest, host]) => `hostfwd=tcp:127.0.0.1:${host}-${VM_IP}:${guest}`).join(',');
  // KVM only when asked for: some hosts (nested or sandboxed) offer /dev/kvm yet hang the guest.
  const accel = values.accel ?? process.env.AIRGAP_SMOKE_ACCEL ?? 'tcg';
  if (accel !== 'kvm' && accel !== 'tcg') throw new Error(`--accel must be kvm or tcg, not '${accel}'`);
  if (accel === 'kvm' && !(await kvmUsable())) throw new Error('--accel kvm: /dev/kvm is missing or not writable');
  const kvm = accel === 'kvm';
  const consoleLog = join(work, 'console.log');
  const bootTimeoutMs = Number(values['boot-timeout']) * 1000;
  const sshPort = forwards.get(22)!;

  /** Powers the VM on with SMBIOS UUID `uuid` (vCenter gives each deployed or cloned VM its
   * own) and logs in; the session ends with a failed check when no login comes. */
  async function boot(uuid: string): Promise<{ vm: ResultPromise; login?: { client: Client; hostKey: string } }> {
    const qemuArgs = [
      '-name', 'airgap-ova-smoke', '-uuid', uuid,
      '-machine', 'pc', '-accel', kvm ? 'kvm' : 'tcg', '-cpu', kvm ? 'qemu64' : 'max',
      '-smp', '2', '-m', '4096',
      '-drive', `file=${overlay},if=virtio,format=qcow2`,
      '-drive', `file=${iso},media=cdrom,if=ide,readonly=on`,
      '-netdev', `user,id=net0,restrict=on,net=10.0.2.0/24,${hostfwd}`,
      '-device', 'virtio-net-pci,netdev=net0',
      '-display', 'none', '-monitor', 'none', '-serial', `file:${consoleLog}`, '-no-reboot',
    ];
    say(`power on (SMBIOS UUID ${uuid}) under qemu-system-x86_64 (${kvm ? 'KVM' : 'software emulation, TCG'}); serial console in ${consoleLog}`);
    const bootStart = Date.now();
    const vm = execa('qemu-system-x86_64', qemuArgs, { reject: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let exited = false;
    void vm.then(() => (exited = true));
    const deadline = bootStart + bootTimeoutMs;
    let lastError = '';
    while (Date.now() < deadline && !exited) {
      try {
        const login = await connect(sshPort, key.private, 20_000);
        check(`ssh as ubuntu with the key from the OVF environment (${((Date.now() - bootStart) / 1000).toFixed(0)} s after power-on)`, true);
        return { vm, login };
      } catch (error) {
        lastError = (error as Error).message;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    const consoleTail = (await readFile(consoleLog, 'utf8').catch(() => '')).split('\n').slice(-25).join('\n');
    const result = exited ? await vm : undefined;
    check('the VM boots and takes the key from the OVF environment for ssh as ubuntu', false, `${exited ? `qemu exited: ${String(result?.stderr)}` : `no login within ${values['boot-timeout']} s: ${lastError}`}\nconsole:\n${consoleTail}`);
    return { vm };
  }

  async function powerOff(vm: ResultPromise, client: Client): Promise<void> {
    say('powering off');
    await run(client, 'sudo -n systemctl poweroff', 30_000).catch(() => undefined);
    client.end();
    const exited = await Promise.race([vm.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 120_000))]);
    check('the VM powers off cleanly', exited, exited ? undefined : 'still running 120 s after poweroff');
  }

  // One watchdog for the whole run: no step may hang it forever.
  const watchdog = setTimeout(() => {
    process.stderr.write('ova-smoke: error: the run took longer than 60 minutes; stopping\n');
    for (const vm of vms) vm.kill('SIGKILL');
    process.exit(1);
  }, 60 * 60_000);
  watchdog.unref();
  const vms: ResultPromise[] = [];

  try {
    const uuid = randomUUID();
    const first = await boot(uuid);
    vms.push(first.vm);
    if (!first.login) return 1;
    const { client, hostKey } = first.login;
    // Checks start once boot is over: cloud-init's last stages restart sshd, for one.
    const booted = await run(client, 'systemctl is-system-running --wait; systemctl --failed --no-legend --plain', 600_000);
    check('the boot finishes with every unit up (systemctl is-system-running: running)', /^running$/m.test(booted.stdout), booted.stdout + booted.stderr);

    const firstboot = await run(client, [
      'sudo -n cat /var/lib/airgap/.firstboot-done',
      'sudo -n journalctl -b -u airgap-firstboot.service -o cat | grep "applying the vApp properties"',
      'stat -c "%U:%G %a %n" /home/ubuntu/.ssh /home/ubuntu/.ssh/authorized_keys',
      'sudo -n cat /var/lib/cloud/instance/datasource',
    ].join('; '));
    check('first boot applied the vApp properties from the ISO, once for this VM instance', firstboot.stdout.includes(uuid) && /applying the vApp properties from iso/.test(firstboot.stdout), firstboot.stdout + firstboot.stderr);
    check('~/.ssh and authorized_keys belong to ubuntu, modes 700 and 600', /^ubuntu:ubuntu 700 \/home\/ubuntu\/\.ssh$/m.test(firstboot.stdout) && /^ubuntu:ubuntu 600 \/home\/ubuntu\/\.ssh\/authorized_keys$/m.test(firstboot.stdout), firstboot.stdout);
    check("cloud-init read the same document through its OVF datasource", /DataSourceOVF/.test(firstboot.stdout), firstboot.stdout);
    const hostname = await run(client, 'hostname');
    check('the host name comes from the vApp property', hostname.stdout.trim() === VM_HOSTNAME, hostname.stdout + hostname.stderr);
    const address = await run(client, 'ip -4 -o addr show scope global');
    check(`the static address ${VM_NETWORK.address} is applied (DHCP would give 10.0.2.15)`, address.stdout.includes(`inet ${VM_NETWORK.address}`) && !address.stdout.includes('dynamic'), address.stdout);
    const route = await run(client, 'ip -4 route show default');
    check('the default route goes through the vApp gateway', route.stdout.includes(`via ${VM_NETWORK.gateway}`), route.stdout);
    const dns = await run(client, 'resolvectl dns');
    check('the DNS server comes from the vApp property', new RegExp(`: .*\\b${VM_NETWORK.dns.replace(/\./g, '\\.')}\\b`).test(dns.stdout), dns.stdout + dns.stderr);
    const sshd = await run(client, 'sudo -n sshd -T');
    check('sshd takes keys only (passwordauthentication no)', /^passwordauthentication no$/m.test(sshd.stdout) && /^kbdinteractiveauthentication no$/m.test(sshd.stdout), sshd.stdout.split('\n').filter((l) => /password|kbd/.test(l)).join('\n') + sshd.stderr);
    const methods = await offeredAuthMethods(sshPort).catch((error: Error) => [`(${error.message})`]);
    check('sshd offers ubuntu public keys only, no password or keyboard-interactive', methods.join(',') === 'publickey', methods.join(', '));
    const firewall = await run(client, 'sudo -n nft list chain inet filter input');
    check('the firewall drops everything but 22, 80, 443, 5000 and 8000', /policy drop/.test(firewall.stdout) && /tcp dport \{ 22, 80, 443, 5000, 8000 \} accept/.test(firewall.stdout), firewall.stdout + firewall.stderr);
    const banner = await run(client, 'cat /etc/motd');
    check('the login banner says to run sudo airgap-setup <repo-ip>', banner.stdout.includes('sudo airgap-setup'), banner.stdout);

    const status = await daemonStatus(client);
    check('airgap.service is up after boot (airgap status)', status.code === 0, status.stdout + status.stderr);

    const setupStart = Date.now();
    const setup = await run(client, `sudo -n airgap-setup ${VM_IP}`, 300_000);
    const setupSeconds = (Date.now() - setupStart) / 1000;
    check(`sudo airgap-setup ${VM_IP} exits 0 (${setupSeconds.toFixed(1)} s)`, setup.code === 0, setup.stdout + setup.stderr);
    process.stdout.write(`${setup.stdout.replace(/^/gm, '          | ')}\n`);
    const json = await run(client, `sudo -n airgap-setup ${VM_IP} --json`);
    type Account = { url: string; username: string; password: string };
    const details = JSON.parse(json.stdout) as { repository: Account; imageRegistry: Account; packRegistry: Account; console: Account; caCertificateBase64: string };
    check('the repository URL is https://<vm-ip>', details.repository.url.replace(/\/$/, '') === `https://${VM_IP}`, details.repository.url);
    check('the registries are on :5000 and :8000', details.imageRegistry.url === `https://${VM_IP}:5000` && details.packRegistry.url === `https://${VM_IP}:8000`, `${details.imageRegistry.url} ${details.packRegistry.url}`);
    const printed = [details.repository, details.imageRegistry, details.packRegistry, details.console].flatMap((a) => [a.url, a.username, a.password]);
    check('the text output prints every URL, username and password, and the base64 CA', printed.every((v) => v.length > 0 && setup.stdout.includes(v)) && setup.stdout.includes(details.caCertificateBase64));
    const ca = Buffer.from(details.caCertificateBase64, 'base64').toString('utf8');
    check('the base64 CA decodes to a PEM certificate', /^-----BEGIN CERTIFICATE-----/.test(ca), ca.slice(0, 60));

    // From the host, through the forwards: real TLS checked against the printed CA, and the
    // certificate must name the VM's address (its SAN), as a client on the site would see it.
    const https = (guest: number, path: string, auth?: Account) =>
      get(`https://127.0.0.1:${forwards.get(guest)}${path}`, { ca, identity: VM_IP, ...(auth ? { auth: `${auth.username}:${auth.password}` } : {}) });
    const repo = await https(443, '/repo/', details.repository);
    check('the repository answers over TLS with the printed CA and credentials', repo.status === 200, `${repo.status} ${repo.body.slice(0, 200)}`);
    const anonymous = await https(443, '/repo/');
    check('the repository asks for credentials without them', anonymous.status === 401, String(anonymous.status));
    for (const [guest, account, label] of [[5000, details.imageRegistry, 'image'], [8000, details.packRegistry, 'pack']] as const) {
      const v2 = await https(guest, '/v2/', account);
      check(`the ${label} registry answers /v2/ with the printed credentials`, v2.status === 200, `${v2.status} ${v2.body.slice(0, 200)}`);
      const denied = await https(guest, '/v2/', { ...account, password: 'wrong' });
      check(`the ${label} registry refuses a wrong password`, denied.status === 401, String(denied.status));
    }
    const caDownload = await get(`http://127.0.0.1:${forwards.get(80)}/ca.crt`);
    check('http://<vm-ip>/ca.crt serves the same CA', caDownload.status === 200 && caDownload.body.trim() === ca.trim(), `${caDownload.status}`);

    // The box's job: run a signed .bin on it, then get its content back from this side with
    // skopeo and HTTPS, through the printed CA and credentials.
    const bundle = await buildBundle(join(work, 'bundle'));
    await upload(client, bundle.bin, '/home/ubuntu/airgap-v1.0.0.bin');
    await upload(client, bundle.publicKey, '/home/ubuntu/airgap-signing.pub');
    const trust = await run(client, 'sudo -n install -D -m 0644 /home/ubuntu/airgap-signing.pub /var/lib/airgap/trusted-keys/smoke.pub && chmod +x /home/ubuntu/airgap-v1.0.0.bin');
    check('the signing key goes into trusted-keys/', trust.code === 0, trust.stderr);
    const importStart = Date.now();
    const imported = await run(client, 'cd /home/ubuntu && sudo -n ./airgap-v1.0.0.bin', 600_000);
    check(`sudo ./airgap-v1.0.0.bin imports the release (${((Date.now() - importStart) / 1000).toFixed(1)} s)`, imported.code === 0 && /installed/.test(imported.stdout), imported.stdout.slice(-800) + imported.stderr.slice(-800));
    const certDir = join(work, 'certs');
    await mkdir(certDir, { recursive: true });
    await writeFile(join(certDir, 'ca.crt'), ca);
    const skopeo = (guest: number, account: Account, ref: string) =>
      execa('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', `${account.username}:${account.password}`, `docker://127.0.0.1:${forwards.get(guest)}/${ref}`], { encoding: 'buffer', stripFinalNewline: false, reject: false, timeout: 120_000 });
    const image = await skopeo(5000, details.imageRegistry, 'library/busybox:1.35');
    const imageDigest = `sha256:${createHash('sha256').update(image.stdout).digest('hex')}`;
    check('skopeo gets the image back with the digest it was built with', image.exitCode === 0 && imageDigest === bundle.imageDigest, `${imageDigest} vs ${bundle.imageDigest} ${String(image.stderr)}`);
    const chart = await skopeo(5000, details.imageRegistry, 'charts/hello:0.1.0');
    check('the chart is in the image registry as charts/hello:0.1.0', chart.exitCode === 0, String(chart.stderr));
    const pack = await skopeo(8000, details.packRegistry, 'packs/cilium:1.14.2');
    check('the pack is in the pack registry as packs/cilium:1.14.2', pack.exitCode === 0, String(pack.stderr));
    const file = await https(443, '/repo/1.0.0/files/nested/b.yaml', details.repository);
    check('the files are under /repo/1.0.0/', file.status === 200 && file.body === bundle.files['nested/b.yaml']!.toString(), `${file.status} ${file.body.slice(0, 100)}`);
    const again = await run(client, 'cd /home/ubuntu && sudo -n ./airgap-v1.0.0.bin', 300_000);
    check('running the same .bin again pushes nothing', again.code === 0 && /already on the box; nothing was pushed/.test(again.stdout), again.stdout.slice(-400) + again.stderr.slice(-400));

    // The firewall, for real: a server on a port it does not open answers inside the VM
    // only, while the same kind of forward to an open port (80, above) answers.
    await run(client, `nohup python3 -m http.server ${CLOSED_PORT} --bind 0.0.0.0 >/dev/null 2>&1 &`);
    let inside: ExecResult = { code: null, stdout: '', stderr: '' };
    await waitFor(async () => (inside = await run(client, `curl -sf -o /dev/null http://127.0.0.1:${CLOSED_PORT}/`)).code === 0, 20);
    const outside = await get(`http://127.0.0.1:${forwards.get(CLOSED_PORT)}/`, { timeoutMs: 15_000 }).then((a) => `HTTP ${a.status}`, (e: Error) => e.message);
    check(`the firewall keeps port ${CLOSED_PORT} closed (a server there answers inside the VM, not outside; port 80 answered)`, caDownload.status === 200 && inside.code === 0 && !outside.startsWith('HTTP'), `inside: curl exit ${inside.code}; outside: ${outside}`);

    await powerOff(first.vm, client);

    // A clone: vCenter gives it a new SMBIOS UUID. First boot runs again for it: new SSH
    // host keys, the vApp properties read again; the release and its data stay.
    const clone = await boot(randomUUID());
    vms.push(clone.vm);
    if (!clone.login) return 1;
    check('the clone has SSH host keys of its own', clone.login.hostKey !== '' && clone.login.hostKey !== hostKey, `${hostKey} -> ${clone.login.hostKey}`);
    const cloneStatus = await daemonStatus(clone.login.client);
    const cloneState = await run(clone.login.client, 'sudo -n cat /var/lib/airgap/.firstboot-done; hostname; sudo -n airgap releases --json');
    check('the clone ran first boot for itself and kept the release', cloneStatus.code === 0 && !cloneState.stdout.includes(uuid) && cloneState.stdout.includes(VM_HOSTNAME) && cloneState.stdout.includes('1.0.0'), cloneState.stdout + cloneState.stderr);
    await powerOff(clone.vm, clone.login.client);
    return checks.every((c) => c.ok) ? 0 : 1;
  } finally {
    for (const vm of vms) {
      if (vm.exitCode === null || vm.exitCode === undefined) vm.kill('SIGKILL');
      await vm;
    }
    clearTimeout(watchdog);
    const failed = checks.filter((c) => !c.ok).length;
    say(`${checks.length - failed} checks passed, ${failed} failed; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (!values.keep && !values.work) await rm(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`ova-smoke: error: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
