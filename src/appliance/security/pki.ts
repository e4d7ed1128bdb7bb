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
import { readFile } from 'node:fs/promises';
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

function info(cert: X509Certificate): ServerCertificateInfo {
  return { subjectAltNames: sanList(cert), notAfter: new Date(cert.validTo).toISOString(), fingerprintSha256: cert.fingerprint256 };
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
export async function ensurePki(layout: StateLayout, names: string[]): Promise<EnsurePkiResult> {
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

  const want = wantedSans(names);
  let serverCertIssued = false;
  const current = await readServerCertificate(layout, ca);
  const fresh =
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
