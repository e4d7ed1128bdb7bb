/**
 * The site's own certificate (`airgap setup <ip> --cert --key --ca`), with a CA and
 * certificates made by Debian's openssl, against the real daemon and registries:
 * `openssl s_client` sees it on all three ports and verifies it with the site CA; a key
 * that does not match, an expired certificate, one for another address and one without
 * its CA are refused with the reason while the installed one is still served; it stays
 * across a restart; the appliance never renews it, and status warns before it expires.
 */
import t from 'tap';
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { startDaemon } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-site-cert-');
const file = (name: string) => join(work, name);
const openssl = (args: string[]) => execa('openssl', args, { cwd: work });

// A site root CA, and server certificates it issues (10 days: status must warn).
await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=Site Root CA/O=Example Site', '-days', '365',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
async function issue(name: string, san: string, days = 10): Promise<void> {
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}.example.site`]);
  await writeFile(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-extfile', `${name}.ext`]);
}
await issue('site', 'IP:127.0.0.1,DNS:localhost');
// For a name only: the daemon's own clients reach the registries on loopback and must check the repo address.
await issue('named', 'DNS:airgap.example.site');
await issue('other', 'IP:127.0.0.1');
await issue('elsewhere', 'IP:10.9.9.9');
// An expired certificate for the right address, from the same CA (openssl 3.0's x509 cannot backdate).
{
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const caKey = await webcrypto.subtle.importKey('pkcs8', (await import('node:crypto')).createPrivateKey(await readFile(file('ca.key'))).export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^./, '1'),
    subject: 'CN=expired.example.site',
    issuer: new x509.X509Certificate(await readFile(file('ca.crt'), 'utf8')).subject,
    notBefore: new Date(Date.now() - 40 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  await writeFile(file('expired.crt'), cert.toString('pem'));
  await writeFile(file('expired.key'), x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
}
const siteFingerprint = new X509Certificate(await readFile(file('site.crt'))).fingerprint256;

const daemon = await startDaemon(t);
const { ports } = daemon;
const setupJson = async (args: string[] = []) => daemon.cli(['setup', '127.0.0.1', '--json', ...args]);
await setupJson();

/** The certificate each port serves, verified against `caFile`: its fingerprint and openssl's verdict. */
async function served(port: number, caFile = file('ca.crt')): Promise<{ fingerprint: string; verified: boolean }> {
  const r = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, '-showcerts'], { input: '', reject: false, timeout: 20_000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
  return { fingerprint: pem ? new X509Certificate(pem).fingerprint256 : '', verified: /Verify return code: 0 \(ok\)/.test(r.stdout) };
}
const allPorts = () => [ports.https, ports.registry, ports.packRegistry];

t.test('--cert --key --ca: the site certificate on all three ports, verified by the site CA, which setup prints', async (t) => {
  const before = await served(ports.https);
  t.equal(before.verified, false, 'the appliance-made certificate does not verify against the site CA');
  const r = await setupJson(['--cert', file('site.crt'), '--key', file('site.key'), '--ca', file('ca.crt')]);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stderr, /server certificate issued; images and packs registries restarted/);
  const details = JSON.parse(r.stdout) as { caCertificateBase64: string };
  t.same(new X509Certificate(Buffer.from(details.caCertificateBase64, 'base64')).fingerprint256, new X509Certificate(await readFile(file('ca.crt'))).fingerprint256, 'airgap-setup prints the site CA');
  for (const port of allPorts()) t.same(await served(port), { fingerprint: siteFingerprint, verified: true }, `port ${port}`);
  const ca = await execa('curl', ['-sf', '--cacert', file('ca.crt'), `https://127.0.0.1:${ports.https}/ca.crt`]);
  t.equal(new X509Certificate(ca.stdout).fingerprint256, new X509Certificate(await readFile(file('ca.crt'))).fingerprint256, '/ca.crt is the site CA');
  const status = JSON.parse((await daemon.cli(['status', '--json'])).stdout) as { healthy: boolean; certificate: { source: string }; warnings: string[] };
  t.equal(status.certificate.source, 'site');
  t.ok(status.healthy, 'the registries answer the daemon over the site certificate');
  t.match(status.warnings.join('\n'), /the site certificate expires on .* in \d days: renew it at the site's CA/);
});

t.test('refused with the reason, and the site certificate stays on every port', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['a key of another certificate', ['--cert', file('site.crt'), '--key', file('other.key'), '--ca', file('ca.crt')], /the key does not belong to the certificate/],
    ['an expired certificate', ['--cert', file('expired.crt'), '--key', file('expired.key'), '--ca', file('ca.crt')], /expired on/],
    ['a certificate for another address', ['--cert', file('elsewhere.crt'), '--key', file('elsewhere.key'), '--ca', file('ca.crt')], /does not cover the repo address 127\.0\.0\.1/],
    ['a certificate without its CA', ['--cert', file('site.crt'), '--key', file('site.key')], /no CA to check it against/],
    ['another CA', ['--cert', file('site.crt'), '--key', file('site.key'), '--ca', file('other.crt')], /does not chain to the given CA|CA certificate/],
  ];
  for (const [what, args, reason] of cases) {
    const r = await setupJson(args);
    t.equal(r.exitCode, 1, what);
    t.match(r.stderr, reason, what);
    t.match(r.stderr, /\[AG_SITE_CERT\]/);
  }
  for (const port of allPorts()) t.same(await served(port), { fingerprint: siteFingerprint, verified: true }, `port ${port} still serves the site certificate`);
  const renew = await setupJson(['--renew']);
  t.equal(renew.exitCode, 1, 'the appliance does not renew a site certificate');
  t.match(renew.stderr, /renew it at the site CA/);
  t.equal((await daemon.cli(['setup', '127.0.0.1', '--cert', file('site.crt')])).exitCode, 2, '--cert without --key is a usage error');
});

t.test('the site certificate stays across a restart; setup again changes nothing', async (t) => {
  t.equal((await daemon.stop()).exitCode, 0);
  const again = await startDaemon(t, { stateDir: daemon.stateDir, ports });
  for (const port of allPorts()) t.same(await served(port), { fingerprint: siteFingerprint, verified: true }, `port ${port}`);
  const r = await again.cli(['setup', '127.0.0.1']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stderr, /Setup completed: nothing changed/);
  const other = await again.cli(['setup', '10.9.9.9']);
  t.equal(other.exitCode, 1, 'a new address the site certificate does not cover is refused');
  t.match(other.stderr, /does not cover 10\.9\.9\.9/);
  t.equal((JSON.parse((await again.cli(['status', '--json'])).stdout) as { repoAddress: string }).repoAddress, '127.0.0.1', 'and changes nothing');
});

t.test("a certificate that names only the repo address (no loopback): the registries still answer the daemon", async (t) => {
  const daemon2 = await startDaemon(t);
  const r = await daemon2.cli(['setup', 'airgap.example.site', '--cert', file('named.crt'), '--key', file('named.key'), '--ca', file('ca.crt')]);
  t.equal(r.exitCode, 0, r.stderr);
  const status = JSON.parse((await daemon2.cli(['status', '--json'])).stdout) as { healthy: boolean; problems: string[]; certificate: { source: string } };
  t.ok(status.healthy, `healthy: ${status.problems.join('; ')}`);
  t.equal(status.certificate.source, 'site');
  const s = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${daemon2.ports.registry}`, '-servername', 'airgap.example.site', '-verify_hostname', 'airgap.example.site', '-CAfile', file('ca.crt')], { input: '', reject: false, timeout: 20_000 });
  t.match(s.stdout, /Verify return code: 0 \(ok\)/, 'the registry serves it, valid for the name');
  const refused = await daemon2.cli(['setup', 'airgap.example.site', '--cert', file('named.crt'), '--key', file('named.key'), '--ca', file('site.crt')]);
  t.equal(refused.exitCode, 1, 'a --ca that is not a CA certificate is refused');
  t.match(refused.stderr, /is not a CA certificate|does not chain/);
  t.match((await daemon2.cli(['events', '--json'])).stdout, /"kind":"setup\.refused"/, 'the refusal is recorded');
});

