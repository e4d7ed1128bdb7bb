/**
 * Addresses: the repo address an admin gives to `airgap setup` (IPv4, IPv6 or a DNS
 * name), listen addresses, and URLs built from them.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { lookup } from 'node:dns/promises';
import { UsageError } from '../../kit/errors.js';

export type AddressKind = 'ipv4' | 'ipv6' | 'dns';

export interface RepoAddress {
  /** Normalised: IPv6 without brackets, DNS names lower case without a final dot. */
  value: string;
  kind: AddressKind;
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Validates the address clients will use to reach the appliance. Accepts `10.0.0.5`,
 * `fd00::5`, `[fd00::5]` and `repo.example.internal`; refuses URLs, ports, zone ids and
 * anything else with a UsageError that shows the expected form.
 */
export function parseRepoAddress(input: string): RepoAddress {
  const text = input.trim();
  const unbracketed = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const family = isIP(unbracketed);
  if (family === 4 || (family === 6 && !unbracketed.includes('%'))) {
    const value = family === 4 ? unbracketed : normaliseIpv6(unbracketed);
    const problem = unusableIp(value);
    if (problem) throw new UsageError(`${value} is ${problem}, not an address clients can reach`, { hint: 'give the address of this appliance that clients use, e.g. airgap-setup 10.0.0.5' });
    return { value, kind: family === 4 ? 'ipv4' : 'ipv6' };
  }
  const name = text.toLowerCase().replace(/\.$/, '');
  if (DNS_NAME.test(name) && !/^[0-9.]+$/.test(name)) return { value: name, kind: 'dns' };
  throw new UsageError(`'${input}' is not an IPv4 address, an IPv6 address or a DNS name`, {
    hint: 'give the address clients use to reach this appliance, e.g. airgap-setup 10.0.0.5 (no scheme, no port)',
  });
}

/** Why an IP cannot be a repo address (unspecified, broadcast, multicast), or undefined. */
function unusableIp(ip: string): string | undefined {
  if (ip === '0.0.0.0' || ip === '::') return 'the unspecified address';
  if (ip === '255.255.255.255') return 'the broadcast address';
  const first = Number(ip.split('.')[0]);
  if (!ip.includes(':') && first >= 224 && first <= 239) return 'a multicast address';
  if (/^ff[0-9a-f]{2}:/i.test(ip)) return 'a multicast address';
  return undefined;
}

/** Compresses an IPv6 address to one canonical text form (RFC 5952) via the URL parser. */
function normaliseIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Listen address for the daemon and registries: an IP literal; throws UsageError. */
export function parseListenAddress(input: string): string {
  const unbracketed = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  if (isIP(unbracketed) === 0) throw new UsageError(`--address must be an IP address of this machine (or 0.0.0.0 / :: for all), not '${input}'`);
  return unbracketed;
}

export function isWildcardAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** `host` or `[v6]` as it appears in a URL authority. */
export function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** `https://host[:port]`, leaving out the default port 443. */
export function httpsUrl(address: string, port: number): string {
  return `https://${urlHost(address)}${port === 443 ? '' : `:${port}`}`;
}

/** `host:port` for a listener, as registries and sockets want it. */
export function hostPort(address: string, port: number): string {
  return `${urlHost(address)}:${port}`;
}

/** Every IP address of this machine's interfaces, normalised. */
export function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) out.push(info.family === 'IPv6' ? normaliseIpv6(info.address.split('%')[0]!) : info.address);
  }
  return out;
}

/**
 * Warnings for an address that does not look like this machine: an IP that no interface
 * holds, or a name that does not resolve (through /etc/hosts or DNS, 2 s at most) to one.
 * Never throws: the admin may know better (NAT, a load balancer).
 */
export async function addressWarnings(address: RepoAddress): Promise<string[]> {
  const mine = new Set(localAddresses());
  if (address.kind !== 'dns') {
    return mine.has(address.value) ? [] : [`${address.value} is not an address of this machine's interfaces (${[...mine].join(', ')}); clients must reach the appliance at it (NAT or a load balancer)`];
  }
  const resolved = await Promise.race([
    lookup(address.value, { all: true }).then((list) => list.map((a) => (a.family === 6 ? normaliseIpv6(a.address) : a.address)), () => undefined),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref()),
  ]);
  if (resolved === undefined) return [`${address.value} does not resolve here; clients must resolve it to this appliance (DNS or /etc/hosts)`];
  if (!resolved.some((a) => mine.has(a))) return [`${address.value} resolves to ${resolved.join(', ')}, not to an address of this machine`];
  return [];
}
