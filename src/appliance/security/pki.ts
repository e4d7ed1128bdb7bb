/**
 * The appliance PKI: one CA per appliance, made once and kept; a server certificate for
 * the HTTPS server and both registries, whose SAN holds the repo address, the host name
 * and loopback, re-issued (by the same CA) when those names change or it nears expiry.
 *
 * Keys are ECDSA P-256, signatures ecdsa-with-SHA256 (RFC 5480, RFC 5758); certificates
 * follow RFC 5280 (CA: basicConstraints cA, keyCertSign; server: serverAuth EKU, SAN).
 * Generation uses @peculiar/x509 over Node's webcrypto; reading uses node:crypto.
 */
import { X509Certificate, randomBytes, webcrypto, createPrivateKey } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { isIP } from 'node:net';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AirgapError } from '../../kit/errors.js';
import { writeFileAtomic } from '../../kit/fs.js';
import type { StateLayout } from '../config/state-layout.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * Node's webcrypto key types. @peculiar/x509 declares the DOM ones, which our lib (no DOM)
 * lacks; at run time they are the same objects.
 */
type KeyPair = webcrypto.CryptoKeyPair;
type SigningKey = webcrypto.CryptoKey;

async function generateKeyPair(): Promise<KeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** CA lifetime: long, because every client trusts it by hand. */
const CA_DAYS = 3650;
/** Server certificate lifetime: 825 days, the longest clients such as Apple's accept. */
const SERVER_DAYS = 825;
/** Re-issue the server certificate when it has fewer days left than this. */
const RENEW_DAYS = 30;

export class PkiError extends AirgapError {}

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface ServerCertificateInfo {
  /** SAN entries as `IP:1.2.3.4` / `DNS:name`, in certificate order. */
  subjectAltNames: string[];
  notAfter: string;
  fingerprintSha256: string;
  /** Who issued it: the appliance's own CA, or the site's (setup --cert). */
  source: 'appliance' | 'site';
}

export interface EnsurePkiResult {
  tls: TlsMaterial;
  caCreated: boolean;
  serverCertIssued: boolean;
  server: ServerCertificateInfo;
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(() => true, (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? false : Promise.reject(e)));
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER (RFC 5280 4.1.2.2)
  return bytes.toString('hex');
}

async function exportKeyPem(key: SigningKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

async function importSigningKey(pem: string): Promise<SigningKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

function sanEntry(name: string): { type: 'ip' | 'dns'; value: string } {
  return isIP(name) ? { type: 'ip', value: name } : { type: 'dns', value: name };
}

/** SAN strings as node:crypto prints them (`IP Address:…`, `DNS:…`), normalised to `IP:`/`DNS:`. */
function sanList(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter(Boolean)
    .map((s) => s.replace(/^IP Address:/, 'IP:'))
    .map((s) => (s.startsWith('IP:') && s.includes(':', 3) ? `IP:${new URL(`http://[${s.slice(3)}]/`).hostname.slice(1, -1)}` : s));
}

function wantedSans(names: string[]): string[] {
  return names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`));
}

function info(cert: X509Certificate, source: ServerCertificateInfo['source'] = 'appliance'): ServerCertificateInfo {
  return { subjectAltNames: sanList(cert), notAfter: new Date(cert.validTo).toISOString(), fingerprintSha256: cert.fingerprint256, source };
}

async function makeCa(layout: StateLayout): Promise<void> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=airgap appliance CA ${randomBytes(4).toString('hex')}, O=airgap`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // Key first: a crash between the two writes leaves a key without a certificate, which
  // the next start replaces, never a certificate whose key is lost.
  await writeFileAtomic(layout.caKey, await exportKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(layout.caCert, cert.toString('pem') + '\n', 0o644);
}

async function issueServerCertificate(layout: StateLayout, caPem: string, caKeyPem: string, names: string[]): Promise<void> {
  const caCert = new x509.X509Certificate(caPem);
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]!.replace(/[,+="\\<>;#]/g, '_')}`,
    issuer: caCert.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + SERVER_DAYS * DAY_MS),
    signingKey: await importSigningKey(caKeyPem),
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names.map(sanEntry), false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  await writeFileAtomic(layout.serverKey, await exportKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(layout.serverCert, cert.toString('pem') + '\n' + caPem, 0o644);
}

async function readCa(layout: StateLayout): Promise<{ caPem: string; caKeyPem: string; ca: X509Certificate }> {
  try {
    const caPem = await readFile(layout.caCert, 'utf8');
    const caKeyPem = await readFile(layout.caKey, 'utf8');
    const ca = new X509Certificate(caPem);
    if (!ca.ca || !ca.checkPrivateKey(createPrivateKey(caKeyPem))) throw new Error('the CA certificate and key do not belong together');
    return { caPem, caKeyPem, ca };
  } catch (cause) {
    throw new PkiError('AG_CA_UNREADABLE', `the appliance CA in ${layout.pkiDir} is damaged: ${(cause as Error).message}`, {
      cause,
      hint: `restore ca.crt and ca.key from a backup; or move ${layout.pkiDir} away to make a new CA (every client must then trust the new one)`,
    });
  }
}

/**
 * Makes sure the state dir holds a CA and a server certificate for `names` (repo address
 * first, then host names and loopback; IPs and DNS names). The CA is made only when
 * neither ca.crt nor ca.key exists; the server certificate is (re-)issued when missing,
 * unreadable, not from this CA, for other names, or within 30 days of expiry.
 * Returns the PEMs (server.crt carries the chain: server, then CA) and what was done.
 * Throws PkiError AG_CA_UNREADABLE when the CA files are damaged or half there.
 */
export async function ensurePki(layout: StateLayout, names: string[], options: { renew?: boolean } = {}): Promise<EnsurePkiResult> {
  const haveCert = await exists(layout.caCert);
  const haveKey = await exists(layout.caKey);
  // Only a key left by an interrupted first run is replaced: no client can trust a CA
  // whose certificate was never written. A certificate without its key is damage.
  const caCreated = !haveCert;
  if (caCreated && (await exists(layout.serverCert))) {
    // A server certificate without its CA: the CA existed and clients trust it; never replace it silently.
    throw new PkiError('AG_CA_UNREADABLE', `the appliance CA certificate ${layout.caCert} is missing, but ${layout.serverCert} was issued by it`, {
      hint: `restore ca.crt from a backup; or move ${layout.pkiDir} away to make a new CA (every client must then trust the new one)`,
    });
  }
  if (caCreated) await makeCa(layout);
  else if (!haveKey) await readCa(layout); // throws AG_CA_UNREADABLE with the hint
  const { caPem, caKeyPem, ca } = await readCa(layout);
  if (await exists(layout.siteCaCert)) return { ...(await readSitePki(layout)), caCreated };

  const want = wantedSans(names);
  let serverCertIssued = false;
  const current = await readServerCertificate(layout, ca);
  const fresh =
    !options.renew &&
    current !== undefined &&
    new Date(current.validTo).getTime() - Date.now() > RENEW_DAYS * DAY_MS &&
    JSON.stringify(sanList(current)) === JSON.stringify(want);
  if (!fresh) {
    await issueServerCertificate(layout, caPem, caKeyPem, names);
    serverCertIssued = true;
  }
  const certPem = await readFile(layout.serverCert, 'utf8');
  const keyPem = await readFile(layout.serverKey, 'utf8');
  return { tls: { caPem, certPem, keyPem }, caCreated, serverCertIssued, server: info(new X509Certificate(certPem)) };
}

/**
 * The installed site PKI (site-ca.crt there): never re-issued here. Throws PkiError
 * AG_SITE_CERT when its files are damaged or the key no longer matches.
 */
async function readSitePki(layout: StateLayout): Promise<Omit<EnsurePkiResult, 'caCreated'>> {
  try {
    const caPem = await readFile(layout.siteCaCert, 'utf8');
    const certPem = await readFile(layout.serverCert, 'utf8');
    const keyPem = await readFile(layout.serverKey, 'utf8');
    const cert = new X509Certificate(certPem);
    new X509Certificate(caPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('server.key does not belong to server.crt');
    return { tls: { caPem, certPem, keyPem }, serverCertIssued: false, server: info(cert, 'site') };
  } catch (cause) {
    throw new PkiError('AG_SITE_CERT', `the site certificate in ${layout.pkiDir} is damaged: ${(cause as Error).message}`, {
      cause,
      hint: `install it again (airgap setup <repo-ip> --cert FILE --key FILE --ca FILE), or remove ${layout.siteCaCert} to go back to the appliance's own certificate`,
    });
  }
}

/** Whether the state dir's server certificate is the site's (setup --cert). */
export function usesSiteCertificate(layout: StateLayout): Promise<boolean> {
  return exists(layout.siteCaCert);
}

async function readServerCertificate(layout: StateLayout, ca: X509Certificate): Promise<X509Certificate | undefined> {
  try {
    const cert = new X509Certificate(await readFile(layout.serverCert, 'utf8'));
    const key = createPrivateKey(await readFile(layout.serverKey, 'utf8'));
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey) || !cert.checkPrivateKey(key)) return undefined;
    return cert;
  } catch {
    return undefined;
  }
}

/** The CA certificate as one base64 line (of the PEM text), ready to paste into an installer. */
export function caBase64(caPem: string): string {
  return Buffer.from(caPem, 'utf8').toString('base64');
}

/** The site's certificate, key and CA as given to `airgap setup --cert --key [--ca]` (PEM text). */
export interface SiteCertificateInput {
  certPem: string;
  keyPem: string;
  caPem?: string | undefined;
}

/** A site certificate that passed validateSiteCertificate: what is installed. */
export interface SiteCertificate {
  /** The server certificate and the intermediates up to the trust anchor (not the anchor itself when self-signed). */
  chainPem: string;
  keyPem: string;
  /** The trust anchor clients get (airgap-setup prints it in base64). */
  caPem: string;
  info: ServerCertificateInfo;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function pemCertificates(text: string, what: string): X509Certificate[] {
  const blocks = text.match(PEM_CERT) ?? [];
  if (!blocks.length) throw new PkiError('AG_SITE_CERT', `${what} holds no PEM certificate`, { hint: 'give PEM files (-----BEGIN CERTIFICATE-----); convert DER with: openssl x509 -inform der -in FILE -out FILE.pem' });
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (cause) {
      throw new PkiError('AG_SITE_CERT', `certificate ${i + 1} of ${what} cannot be read: ${(cause as Error).message}`, { cause });
    }
  });
}

const pemOf = (cert: X509Certificate) => `${cert.toString().trim()}\n`;

/** Whether the SAN of `cert` covers `address` (an IP, or a DNS name; `*.` matches one label, RFC 6125 6.4.3). */
export function certificateCovers(cert: X509Certificate, address: string): boolean {
  const sans = sanList(cert);
  if (isIP(address)) {
    const want = isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
    return sans.includes(`IP:${want}`);
  }
  const name = address.toLowerCase().replace(/\.$/, '');
  return sans.some((s) => {
    if (!s.startsWith('DNS:')) return false;
    const pattern = s.slice(4).toLowerCase().replace(/\.$/, '');
    if (pattern === name) return true;
    if (!pattern.startsWith('*.')) return false;
    const rest = pattern.slice(2);
    const dot = name.indexOf('.');
    return dot > 0 && name.slice(dot + 1) === rest && rest.includes('.');
  });
}

/**
 * Checks a site certificate before anything is installed (issue 17): the key belongs to
 * the certificate and is not encrypted, the certificate is a server certificate (not a
 * CA; serverAuth when it names its uses), its SAN covers `repoAddress`, it chains to the
 * given CA or to the root its file carries (each signature checked), and every
 * certificate of that chain is valid at `now`. Returns what to install. Throws PkiError
 * AG_SITE_CERT with the reason.
 */
export function validateSiteCertificate(input: SiteCertificateInput, repoAddress: string, now = new Date()): SiteCertificate {
  const refuse = (why: string, hint?: string) => new PkiError('AG_SITE_CERT', `the site certificate is refused: ${why}`, { hint: hint ?? 'fix it and run airgap setup again; the running certificate stays' });
  const given = pemCertificates(input.certPem, 'the --cert file');
  const leaf = given[0]!;
  let key;
  try {
    key = createPrivateKey(input.keyPem);
  } catch (cause) {
    const encrypted = /ENCRYPTED/.test(input.keyPem);
    throw refuse(encrypted ? 'the key is encrypted' : `the key cannot be read: ${(cause as Error).message}`, encrypted ? 'decrypt it first: openssl pkey -in KEY -out KEY.plain (then keep that file 0600)' : undefined);
  }
  if (!leaf.checkPrivateKey(key)) throw refuse('the key does not belong to the certificate', 'give the key the certificate was issued for (openssl x509 -noout -pubkey and openssl pkey -pubout print the same public key)');
  // What Go's TLS (the registries) and Node's both serve: RSA of 2048 bits or more, ECDSA on P-256/P-384/P-521, Ed25519.
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'rsa-pss') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw refuse('the RSA key is shorter than 2048 bits');
  } else if (type === 'ec') {
    if (!['prime256v1', 'secp384r1', 'secp521r1'].includes(key.asymmetricKeyDetails?.namedCurve ?? '')) throw refuse(`the EC key's curve ${key.asymmetricKeyDetails?.namedCurve ?? '?'} is not P-256, P-384 or P-521`);
  } else if (type !== 'ed25519') {
    throw refuse(`a ${type ?? 'unknown'} key is not served by the registries (use RSA, ECDSA or Ed25519)`);
  }
  if (leaf.ca) throw refuse('it is a CA certificate, not a server certificate');
  if (leaf.keyUsage && leaf.keyUsage.length && !leaf.keyUsage.includes('1.3.6.1.5.5.7.3.1')) throw refuse('its extended key usage does not include serverAuth');
  if (!certificateCovers(leaf, repoAddress)) {
    throw refuse(`its SAN (${sanList(leaf).join(', ') || 'none'}) does not cover the repo address ${repoAddress}`, `issue it with ${isIP(repoAddress) ? `IP:${repoAddress}` : `DNS:${repoAddress}`} in its subjectAltName`);
  }
  const anchors = input.caPem ? pemCertificates(input.caPem, 'the --ca file') : given.slice(1).filter((c) => c.checkIssued(c) && c.verify(c.publicKey));
  if (!anchors.length) throw refuse('no CA to check it against', 'give the CA with --ca FILE, or a --cert file that carries its chain up to the root');
  const pool = [...given.slice(1), ...anchors];
  const chain = [leaf];
  let anchor: X509Certificate | undefined;
  for (let cert = leaf; chain.length <= 10; ) {
    const trusted = anchors.find((a) => cert.checkIssued(a) && cert.verify(a.publicKey));
    if (trusted) {
      anchor = trusted;
      break;
    }
    const issuer = pool.find((c) => c !== cert && !chain.includes(c) && cert.checkIssued(c) && cert.verify(c.publicKey));
    if (!issuer) break;
    chain.push(issuer);
    cert = issuer;
  }
  if (!anchor) throw refuse(`it does not chain to ${input.caPem ? 'the given CA' : 'the root its file carries'} (issuer: ${chain.at(-1)!.issuer.replace(/\n/g, ', ')})`, 'give the CA that issued it with --ca, with any intermediates in the --cert file after the certificate');
  // Every issuer must be a CA (X509_check_issued does not look at basicConstraints), and the
  // anchor a self-signed root: clients on the nodes and the daemon's own verify up to one.
  for (const issuer of [...chain.slice(1), anchor]) {
    if (!issuer.ca) throw refuse(`${issuer.subject.replace(/\n/g, ', ')} issues certificates but is not a CA certificate`);
  }
  if (!(anchor.checkIssued(anchor) && anchor.verify(anchor.publicKey))) {
    throw refuse(`the CA ${anchor.subject.replace(/\n/g, ', ')} is not a root (self-signed) certificate`, 'give the root CA with --ca, and put the intermediates in the --cert file after the certificate');
  }
  for (const cert of [...chain, anchor]) {
    if (new Date(cert.validFrom) > now) throw refuse(`${cert === leaf ? 'it' : `its chain (${cert.subject.replace(/\n/g, ', ')})`} is not valid before ${new Date(cert.validFrom).toISOString()}`);
    if (new Date(cert.validTo) < now) throw refuse(`${cert === leaf ? 'it' : `its chain (${cert.subject.replace(/\n/g, ', ')})`} expired on ${new Date(cert.validTo).toISOString()}`);
  }
  // Served: the certificate and its intermediates; the anchor too when it is not a self-signed root.
  const served = anchor.checkIssued(anchor) ? chain : [...chain, anchor];
  return { chainPem: served.map(pemOf).join(''), keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), caPem: pemOf(anchor), info: info(leaf, 'site') };
}

/**
 * Installs a validated site certificate as the server certificate (server.crt, server.key)
 * and its CA as site-ca.crt, which marks the state dir as using the site's PKI: ensurePki
 * then never re-issues it. Key first, the CA last. Throws the file system's errors.
 */
export async function installSiteCertificate(layout: StateLayout, site: SiteCertificate): Promise<TlsMaterial> {
  // Each file is written whole first; then three renames in a row, the CA last.
  const staged = (path: string) => `${path}.new`;
  await writeFileAtomic(staged(layout.serverKey), site.keyPem, 0o600);
  await writeFileAtomic(staged(layout.serverCert), site.chainPem, 0o644);
  await writeFileAtomic(staged(layout.siteCaCert), site.caPem, 0o644);
  for (const path of [layout.serverKey, layout.serverCert, layout.siteCaCert]) await rename(staged(path), path);
  return { caPem: site.caPem, certPem: site.chainPem, keyPem: site.keyPem };
}
