/**
 * First boot of the OVA: the vApp properties an admin typed into vCenter's "Deploy OVF
 * Template" arrive as an OVF environment document (DMTF DSP0243, "OVF Environment"), on
 * an ISO or through VMware guestinfo. This module reads it and writes what it asks for
 * under a root folder: the SSH public keys of the `ubuntu` user, the host name, a static
 * network (netplan), and SSH with password login off (a drop-in named 00- so that it wins:
 * sshd keeps the first value it reads). Idempotent: the same document
 * writes the same files.
 */
import { chmod, chown, mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { UsageError } from '../../kit/errors.js';
import { writeFileAtomic } from '../../kit/fs.js';

/** The vApp property keys of the OVF descriptor (packer/ovf/airgap.ovf). */
export const OVF_KEYS = {
  publicKeys: 'public-keys',
  hostname: 'hostname',
  address: 'network.address',
  gateway: 'network.gateway',
  dns: 'network.dns',
} as const;

export interface FirstBootSettings {
  publicKeys: string[];
  hostname?: string;
  /** Static IPv4/IPv6 network; absent means DHCP. */
  network?: { address: string; prefix: number; gateway?: string; dns: string[] };
}

const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;
const SSH_KEY = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( [^\n]*)?$/;

/**
 * Reads the properties of an OVF environment document. Throws UsageError for a document
 * that is not one, an invalid key, host name or address.
 */
export function parseOvfEnvironment(xml: string): FirstBootSettings {
  const parser = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, attributeNamePrefix: '@' });
  let doc: { Environment?: { PropertySection?: { Property?: unknown } } };
  try {
    doc = parser.parse(xml) as typeof doc;
  } catch (cause) {
    throw new UsageError('the OVF environment is not valid XML', { cause });
  }
  if (!doc.Environment) throw new UsageError('the document is not an OVF environment (no <Environment>)');
  const raw = doc.Environment.PropertySection?.Property;
  const list = (Array.isArray(raw) ? raw : raw ? [raw] : []) as Array<{ '@key'?: string; '@value'?: string }>;
  const props = new Map(list.map((p) => [p['@key'] ?? '', String(p['@value'] ?? '').trim()]));

  const publicKeys = (props.get(OVF_KEYS.publicKeys) ?? '')
    .split(/\n|(?=(?:ssh-|ecdsa-|sk-))/)
    .map((k) => k.trim())
    .filter(Boolean);
  for (const key of publicKeys) {
    if (!SSH_KEY.test(key)) throw new UsageError(`'${key.slice(0, 40)}…' is not an SSH public key (ssh-ed25519 AAAA… comment)`);
  }
  const settings: FirstBootSettings = { publicKeys };
  const hostname = props.get(OVF_KEYS.hostname);
  if (hostname) {
    if (!HOSTNAME.test(hostname)) throw new UsageError(`'${hostname}' is not a valid host name`);
    settings.hostname = hostname.toLowerCase();
  }
  const address = props.get(OVF_KEYS.address);
  if (address) {
    const [ip, prefixText] = address.split('/');
    const family = isIP(ip ?? '');
    const prefix = Number(prefixText);
    if (!family || !Number.isInteger(prefix) || prefix < 1 || prefix > (family === 4 ? 32 : 128)) {
      throw new UsageError(`network.address '${address}' must be an address with its prefix, e.g. 10.0.0.5/24`);
    }
    const gateway = props.get(OVF_KEYS.gateway) || undefined;
    if (gateway && !isIP(gateway)) throw new UsageError(`network.gateway '${gateway}' is not an IP address`);
    const dns = (props.get(OVF_KEYS.dns) ?? '').split(/[\s,]+/).filter(Boolean);
    for (const d of dns) if (!isIP(d)) throw new UsageError(`network.dns '${d}' is not an IP address`);
    settings.network = { address: ip!, prefix, ...(gateway ? { gateway } : {}), dns };
  }
  return settings;
}

/** The netplan document for a static network on every ethernet interface. */
export function netplanFor(network: NonNullable<FirstBootSettings['network']>): string {
  const lines = [
    '# Written by airgap firstboot from the vApp properties.',
    'network:',
    '  version: 2',
    '  ethernets:',
    '    airgap:',
    '      match: { name: "e*" }',
    '      dhcp4: false',
    '      dhcp6: false',
    // A static address only: no SLAAC address or default route from router adverts.
    '      accept-ra: false',
    `      addresses: [${network.address}/${network.prefix}]`,
  ];
  if (network.gateway) lines.push('      routes:', `        - to: default`, `          via: ${network.gateway}`);
  if (network.dns.length) lines.push('      nameservers:', `        addresses: [${network.dns.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

/** An account of `<root>/etc/passwd`: numeric ids and home folder (as seen from `root`). */
export interface PasswdEntry {
  uid: number;
  gid: number;
  home: string;
}

/** Looks `user` up in `<root>/etc/passwd`; undefined when the file or the user is missing. */
export async function lookupUser(root: string, user: string): Promise<PasswdEntry | undefined> {
  const passwd = await readFile(join(root, 'etc', 'passwd'), 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid, , home] = line.split(':');
    if (name === user && uid && gid && home) return { uid: Number(uid), gid: Number(gid), home };
  }
  return undefined;
}

/** Paths first boot writes under `root` for `user` (home from passwd, else /home/<user>). */
export function firstBootPaths(root: string, user = 'ubuntu', home = `/home/${user}`) {
  return {
    authorizedKeys: join(root, home, '.ssh', 'authorized_keys'),
    hostname: join(root, 'etc', 'hostname'),
    hosts: join(root, 'etc', 'hosts'),
    netplan: join(root, 'etc', 'netplan', '60-airgap.yaml'),
    sshd: join(root, 'etc', 'ssh', 'sshd_config.d', '00-airgap.conf'),
  };
}

/**
 * Writes the settings under `root` (`/` on the appliance): authorized_keys (0600 in a
 * 0700 .ssh, owned by the user when `<root>/etc/passwd` has them and we run as root, as
 * sshd's StrictModes wants), /etc/hostname and its /etc/hosts line, the netplan file (only
 * for a static network; 0600 as netplan wants), and the sshd drop-in that turns password
 * login off. Returns the files written.
 */
export async function applyFirstBoot(root: string, settings: FirstBootSettings, user = 'ubuntu'): Promise<string[]> {
  const account = await lookupUser(root, user);
  const paths = firstBootPaths(root, user, account?.home);
  const written: string[] = [];
  if (settings.publicKeys.length) {
    const sshDir = dirname(paths.authorizedKeys);
    await mkdir(sshDir, { recursive: true, mode: 0o700 });
    await chmod(sshDir, 0o700);
    await writeFileAtomic(paths.authorizedKeys, `${settings.publicKeys.join('\n')}\n`, 0o600);
    if (account && process.getuid?.() === 0) {
      await chown(sshDir, account.uid, account.gid);
      await chown(paths.authorizedKeys, account.uid, account.gid);
    }
    written.push(paths.authorizedKeys);
  }
  if (settings.hostname) {
    await writeFileAtomic(paths.hostname, `${settings.hostname}\n`, 0o644);
    const hosts = (await readFile(paths.hosts, 'utf8').catch(() => '127.0.0.1 localhost\n')).split('\n').filter((l) => l !== '' && !l.startsWith('127.0.1.1'));
    await writeFileAtomic(paths.hosts, `${[...hosts, `127.0.1.1 ${settings.hostname}`].join('\n')}\n`, 0o644);
    written.push(paths.hostname, paths.hosts);
  }
  if (settings.network) {
    await writeFileAtomic(paths.netplan, netplanFor(settings.network), 0o600);
    written.push(paths.netplan);
  }
  await writeFileAtomic(paths.sshd, '# Written by airgap firstboot: keys only.\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n', 0o644);
  written.push(paths.sshd);
  return written;
}
