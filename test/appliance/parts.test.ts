/**
 * The appliance's parts on their own, with real files: config resolution, address
 * rules, the SQLite store and its migrations, the PKI, credentials and htpasswd, the
 * registry config.
 */
import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, stat, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { parse as parseYaml } from 'yaml';
import Database from 'better-sqlite3';
import { httpsUrl, parseListenAddress, parseRepoAddress } from '../../src/appliance/config/address.js';
import { resolveServeConfig, resolveStateDir } from '../../src/appliance/config/config.js';
import { HTPASSWD_BCRYPT_COST, ensureCredentials, generatePassword, hashPassword, htpasswdFor, verifyPasswordAsync } from '../../src/appliance/security/credentials.js';
import { caBase64, ensurePki } from '../../src/appliance/security/pki.js';
import { renderRegistryConfig } from '../../src/appliance/registries/registry-config.js';
import { stateLayout } from '../../src/appliance/config/state-layout.js';
import { DB_CACHE_KIB, openDatabase, SCHEMA_VERSION, schemaVersion } from '../../src/appliance/store/db.js';
import { listEvents, recordEvent } from '../../src/appliance/store/events.js';
import { getSetting, setSetting } from '../../src/appliance/store/settings.js';
import { tempDir } from '../helpers/temp.js';
import { createImport } from '../../src/appliance/store/imports.js';
import { insertRelease, listArtifacts } from '../../src/appliance/store/releases.js';
import { RELEASES_JSON, releasesDocument, writeReleasesJson } from '../../src/appliance/import/commit.js';

const work = await tempDir(t, 'airgap-parts-');

/** The parts of a rendered docker-registry config.yml the tests read. */
interface RegistryConfig {
  version: number;
  http: { addr: string; tls: { certificate: string; key: string; minimumtls: string } };
  auth: { htpasswd: { path: string } };
  storage: { filesystem: { rootdirectory: string }; delete: { enabled: boolean }; maintenance: { uploadpurging: { enabled: boolean } } };
}

t.test('repo addresses: IPv4, IPv6, DNS names; nothing else', async (t) => {
  t.same(parseRepoAddress('10.0.0.5'), { value: '10.0.0.5', kind: 'ipv4' });
  t.same(parseRepoAddress(' 10.0.0.5 '), { value: '10.0.0.5', kind: 'ipv4' });
  t.same(parseRepoAddress('FD00:0:0::5'), { value: 'fd00::5', kind: 'ipv6' });
  t.same(parseRepoAddress('[fd00::5]'), { value: 'fd00::5', kind: 'ipv6' });
  t.same(parseRepoAddress('Repo.Example.internal.'), { value: 'repo.example.internal', kind: 'dns' });
  t.same(parseRepoAddress('airgap'), { value: 'airgap', kind: 'dns' });
  for (const bad of ['', 'https://10.0.0.5', '10.0.0.5:443', '10.0.0', '999.1.1.1', 'fe80::1%eth0', 'a_b.example', '-a.example', 'a..b', `${'a'.repeat(64)}.example`, '10.0.0.5/24', 'host name']) {
    t.throws(() => parseRepoAddress(bad), { code: 'AG_USAGE' }, `refuses '${bad}'`);
  }
  t.equal(httpsUrl('10.0.0.5', 443), 'https://10.0.0.5');
  t.equal(httpsUrl('fd00::5', 5000), 'https://[fd00::5]:5000');
  t.equal(parseListenAddress('[::]'), '::');
  t.throws(() => parseListenAddress('localhost'), { code: 'AG_USAGE' });
});

t.test('serve config: embedded defaults for root and for users; flags and env win', async (t) => {
  const user = { env: { HOME: '/home/ada' }, uid: 1000, cwd: '/work' };
  const root = { env: {}, uid: 0, cwd: '/' };
  t.match(resolveServeConfig({}, user), { stateDir: '/home/ada/.local/state/airgap', address: '127.0.0.1', httpsPort: 8443, httpPort: 8080, registryPort: 5000, packRegistryPort: 8000 });
  t.match(resolveServeConfig({}, root), { stateDir: '/var/lib/airgap', address: '0.0.0.0', httpsPort: 443, httpPort: 80, registryPort: 5000, packRegistryPort: 8000 });
  t.equal(resolveStateDir(undefined, { ...user, env: { XDG_STATE_HOME: '/xdg' } }), '/xdg/airgap');
  t.equal(resolveStateDir(undefined, { ...user, env: { AIRGAP_STATE_DIR: 'rel' } }), '/work/rel');
  t.equal(resolveStateDir('/flag', { ...user, env: { AIRGAP_STATE_DIR: '/env' } }), '/flag');
  t.match(resolveServeConfig({ httpsPort: '9443', address: '::1' }, user), { httpsPort: 9443, address: '::1' });
  t.throws(() => resolveServeConfig({ httpPort: '0' }, user), { code: 'AG_USAGE' });
  t.throws(() => resolveServeConfig({ httpPort: '8443' }, user), /must differ/);
  t.throws(() => resolveServeConfig({ logLevel: 'loud' }, user), /--log-level/);
});

t.test('database: created 0600, WAL, migrated once; a newer schema or a non-database is refused', async (t) => {
  const path = join(work, 'state.db');
  const db = openDatabase(path);
  t.equal(schemaVersion(db), SCHEMA_VERSION);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal((await stat(path)).mode & 0o777, 0o600);
  t.equal(setSetting(db, 'k', 'v1'), true);
  t.equal(setSetting(db, 'k', 'v1'), false, 'unchanged value reports no change');
  recordEvent(db, { actor: 'test', kind: 'registry.exited', message: 'm', data: { code: 1 } });
  recordEvent(db, { actor: 'test', kind: 'setup.applied', message: 'n' });
  db.close();
  const again = openDatabase(path);
  t.equal(getSetting(again, 'k'), 'v1', 'reopened with its data; migrations not re-run');
  t.same(listEvents(again, { kind: 'registry.' }).map((e) => [e.kind, e.data]), [['registry.exited', { code: 1 }]]);
  t.same(listEvents(again).map((e) => e.kind), ['setup.applied', 'registry.exited'], 'newest first');
  again.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  again.close();
  t.throws(() => openDatabase(path), { code: 'AG_DB_NEWER' });
  const junk = join(work, 'junk.db');
  await writeFile(junk, 'this is not a database, just some text that is long enough to have a header'.repeat(20));
  t.throws(() => openDatabase(junk), { code: 'AG_DB_OPEN' });
});

t.test('releases.json: written a page of files at a time, the same bytes as the whole document', async (t) => {
  const db = openDatabase(join(work, 'releases.db'));
  t.teardown(() => db.close());
  const repo = await tempDir(t, 'airgap-parts-repo-');
  const expected = () => `${JSON.stringify(releasesDocument(db), null, 2)}\n`;
  await writeReleasesJson(db, repo);
  t.equal(await readFile(join(repo, RELEASES_JSON), 'utf8'), expected(), 'no release');
  const release = (version: string) => ({ version, name: 'demo', created: '2026-01-01T00:00:00Z', payloadSha256: 'a'.repeat(64), tocSha256: 'b'.repeat(64), keyId: null, importId: createImport(db, { file: `/x/${version}.bin`, source: 'cli', actor: 'test', options: {} }).id, importedAt: `2026-01-0${version[0]}T00:00:00Z` });
  // More files than two pages, in an order that is not the database's.
  const files = Array.from({ length: 12_001 }, (_, i) => ({ kind: 'file' as const, target: `data/${(i * 7919) % 12_001}/f "${i}".txt`, digest: `sha256:${'c'.repeat(64)}`, size: i, mediaType: null, platforms: null }));
  const image = { kind: 'image' as const, target: 'library/busybox:1', digest: `sha256:${'d'.repeat(64)}`, size: 10, mediaType: 'application/vnd.oci.image.index.v1+json', platforms: ['linux/amd64'] };
  const chart = { kind: 'chart' as const, target: 'charts/hello:0.1.0', digest: `sha256:${'e'.repeat(64)}`, size: 5, mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: null };
  insertRelease(db, release('1.0.0'), [...files, image, chart], true);
  insertRelease(db, release('2.0.0'), [], true);
  await writeReleasesJson(db, repo);
  const written = await readFile(join(repo, RELEASES_JSON), 'utf8');
  t.equal(written, expected(), 'two releases, one of 12,001 files and one empty');
  t.equal((JSON.parse(written) as { releases: Array<{ files: unknown[] }> }).releases[0]!.files.length, 12_001);
  t.same(
    listArtifacts(db, { version: '1.0.0', files: false }).map((a) => a.target),
    ['charts/hello:0.1.0', 'library/busybox:1'],
    'the files left out by the query: images, charts and packs only',
  );
  t.equal(listArtifacts(db, { version: '1.0.0' }).length, 12_003, 'and all of them without the filter');
  t.equal(db.pragma('cache_size', { simple: true }), -DB_CACHE_KIB, 'a page cache of 4 MB');
});

t.test('PKI: the CA is made once; the server certificate follows the names, from the same CA', async (t) => {
  const layout = stateLayout(join(work, 'pki-state'));
  const first = await ensurePki(layout, ['10.0.0.5', 'airgap-box', 'localhost', '127.0.0.1', '::1']);
  t.equal(first.caCreated, true);
  t.equal(first.serverCertIssued, true);
  t.same(first.server.subjectAltNames, ['IP:10.0.0.5', 'DNS:airgap-box', 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  const ca = new X509Certificate(first.tls.caPem);
  const server = new X509Certificate(first.tls.certPem);
  t.ok(ca.ca, 'CA:TRUE');
  t.notOk(server.ca, 'the server certificate is not a CA');
  t.ok(server.checkIssued(ca) && server.verify(ca.publicKey), 'signed by the CA');
  t.ok(server.checkPrivateKey(createPrivateKey(first.tls.keyPem)));
  t.ok(server.checkIP('10.0.0.5') && server.checkHost('airgap-box'));
  t.match(server.keyUsage ?? [], ['1.3.6.1.5.5.7.3.1'], 'serverAuth EKU');
  t.ok(new Date(server.validTo).getTime() - Date.now() <= 826 * 86_400_000, 'at most 825 days');
  t.match(first.tls.certPem, /END CERTIFICATE-----\n-----BEGIN CERTIFICATE/, 'server.crt carries the chain');
  t.equal((await stat(layout.caKey)).mode & 0o777, 0o600);
  t.equal((await stat(layout.serverKey)).mode & 0o777, 0o600);

  const same = await ensurePki(layout, ['10.0.0.5', 'airgap-box', 'localhost', '127.0.0.1', '::1']);
  t.same([same.caCreated, same.serverCertIssued], [false, false], 'same names: nothing re-made');
  t.equal(same.tls.certPem, first.tls.certPem);

  const moved = await ensurePki(layout, ['10.0.0.9', 'airgap-box', 'localhost', '127.0.0.1', '::1']);
  t.same([moved.caCreated, moved.serverCertIssued], [false, true], 'new address: new server certificate');
  t.equal(moved.tls.caPem, first.tls.caPem, 'CA kept');
  t.equal(caBase64(moved.tls.caPem), Buffer.from(first.tls.caPem).toString('base64'));
  t.ok(new X509Certificate(moved.tls.certPem).checkIP('10.0.0.9'));
  t.notOk(new X509Certificate(moved.tls.certPem).checkIP('10.0.0.5'));

  await writeFile(layout.serverCert, 'garbage');
  t.equal((await ensurePki(layout, ['10.0.0.9', 'airgap-box', 'localhost', '127.0.0.1', '::1'])).serverCertIssued, true, 'an unreadable server certificate is re-issued');

  await rm(layout.caKey);
  await t.rejects(ensurePki(layout, ['10.0.0.9']), { code: 'AG_CA_UNREADABLE' }, 'a CA certificate without its key is not silently replaced');
  t.equal(await readFile(layout.caCert, 'utf8'), first.tls.caPem);
});

t.test('credentials: strong, made once, kept; scrypt and bcrypt checks', async (t) => {
  const passwords = new Set(Array.from({ length: 200 }, generatePassword));
  t.equal(passwords.size, 200);
  for (const p of passwords) t.match(p, /^[A-HJ-NP-Za-km-z2-9]{24}$/);
  const db = new Database(':memory:');
  db.exec((await import('../../src/appliance/store/migrations.js')).MIGRATIONS[0]!);
  const a = ensureCredentials(db);
  const b = ensureCredentials(db);
  t.same(a, b, 'the second call returns the same accounts');
  t.same(Object.keys(a), ['repository', 'imageRegistry', 'packRegistry', 'console']);
  const hash = hashPassword('s3cret');
  t.ok(await verifyPasswordAsync('s3cret', hash));
  t.notOk(await verifyPasswordAsync('s3creT', hash));
  t.notOk(await verifyPasswordAsync('s3cret', 'plain$x$y'));
  const line = htpasswdFor(a.imageRegistry);
  t.match(line, new RegExp(`^${a.imageRegistry.username}:\\$2b\\$04\\$`));
  t.ok(bcrypt.compareSync(a.imageRegistry.password, line.trim().split(':')[1]!));
  t.equal(htpasswdFor(a.imageRegistry, line), line, 'an up-to-date file is kept as it is');
  t.not(htpasswdFor({ ...a.imageRegistry, password: 'other' }, line), line, 'a different password is re-hashed');
  const older = `${a.imageRegistry.username}:${bcrypt.hashSync(a.imageRegistry.password, 6)}\n`;
  const renewed = htpasswdFor(a.imageRegistry, older);
  t.not(renewed, older, 'a hash of another cost (an older box) is made again');
  t.equal(bcrypt.getRounds(renewed.trim().slice(a.imageRegistry.username.length + 1)), HTPASSWD_BCRYPT_COST, 'at the current cost');
});

t.test('registry config: deterministic, TLS, htpasswd, delete and upload purging', async (t) => {
  const layout = stateLayout('/var/lib/airgap');
  const input = { name: 'images', paths: layout.registry('images'), address: '0.0.0.0', port: 5000, serverCert: layout.serverCert, serverKey: layout.serverKey, httpSecret: 's' };
  const text = renderRegistryConfig(input);
  t.equal(renderRegistryConfig(input), text);
  const config = parseYaml(text) as RegistryConfig;
  t.equal(config.version, 0.1);
  t.equal(config.http.addr, '0.0.0.0:5000');
  t.same(config.http.tls, { certificate: '/var/lib/airgap/pki/server.crt', key: '/var/lib/airgap/pki/server.key', minimumtls: 'tls1.2' });
  t.equal(config.auth.htpasswd.path, '/var/lib/airgap/registries/images/htpasswd');
  t.equal(config.storage.filesystem.rootdirectory, '/var/lib/airgap/registries/images/data');
  t.equal(config.storage.delete.enabled, true);
  t.equal(config.storage.maintenance.uploadpurging.enabled, true);
  t.equal((parseYaml(renderRegistryConfig({ ...input, address: '::', port: 8000 })) as RegistryConfig).http.addr, '[::]:8000');
});

t.test('login limiter: IPv6 clients by /64, bounded memory, the window passes', async (t) => {
  const { LoginLimiter, SessionStore } = await import('../../src/appliance/http/console-auth.js');
  t.equal(LoginLimiter.clientOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(LoginLimiter.clientOf('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64', 'another address of the same /64 is the same client');
  t.equal(LoginLimiter.clientOf('::ffff:10.0.0.7'), '10.0.0.7');
  const limiter = new LoginLimiter(2, 60, 3);
  limiter.fail('a', 0);
  limiter.fail('a', 1000);
  t.ok(limiter.retryAfter('a', 2000) > 0, 'limited after two failures');
  t.equal(limiter.retryAfter('a', 61_000), 0, 'free again once the window passed');
  for (const c of ['b', 'c', 'd', 'e']) limiter.fail(c, 3000);
  t.equal(limiter.retryAfter('a', 3000), 0, 'the oldest client is forgotten beyond the cap');
  const sessions = new SessionStore();
  const s = sessions.create('admin', 0);
  t.ok(sessions.get(s.id, 11 * 3600 * 1000), 'alive after 11 h');
  t.ok(sessions.get(s.id, 22 * 3600 * 1000), 'each use extends it');
  t.notOk(sessions.get(s.id, 35 * 3600 * 1000), 'ends after 12 h without use');
});
