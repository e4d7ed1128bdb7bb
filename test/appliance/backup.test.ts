/**
 * Backup and restore on their own, with real files and a real SQLite database (no
 * daemon): what a backup holds and how, what a restore gives back, and every bad file a
 * restore must refuse with the state dir left as it was. The daemon flow (setup output
 * compared, pulls after a restore) is in test/e2e/backup.test.ts.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { writeBackupFile, type BackupManifest } from '../../src/appliance/backup/backup.js';
import { restoreBackup } from '../../src/appliance/backup/restore.js';
import { parseSettings } from '../../src/appliance/config/config-file.js';
import { stateLayout, type StateLayout } from '../../src/appliance/config/state-layout.js';
import { fullVolumeWarning } from '../../src/appliance/daemon/status.js';
import { ensurePki } from '../../src/appliance/security/pki.js';
import { openDatabase, SCHEMA_VERSION } from '../../src/appliance/store/db.js';
import { createImport, finishImport, journalBlob } from '../../src/appliance/store/imports.js';
import { insertRelease, listReleases, releaseDiskUse } from '../../src/appliance/store/releases.js';
import { setSetting } from '../../src/appliance/store/settings.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-backup-');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A state dir with two releases (sharing a blob), PKI, a trusted key, config.yaml, registry data and files. */
async function makeState(root: string): Promise<StateLayout> {
  const layout = stateLayout(root);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const db = openDatabase(layout.database);
  for (const [version, blobs] of [['1.0.0', [['sha256:aa', 100], ['sha256:bb', 1000]]], ['1.1.0', [['sha256:aa', 100], ['sha256:cc', 5000]]]] as const) {
    const job = createImport(db, { file: `/media/airgap-v${version}.bin`, source: 'cli', actor: 'cli', options: {} });
    db.prepare("UPDATE imports SET version = ?, state = 'running' WHERE id = ?").run(version, job.id);
    for (const [digest, size] of blobs) journalBlob(db, job.id, { registry: 'images', repository: 'app', digest, size, action: 'pushed' });
    insertRelease(db, { version, name: 'demo', created: '2026-12-01T00:00:00Z', payloadSha256: 'p', tocSha256: `t${version}`, keyId: null, importId: job.id, importedAt: new Date().toISOString() }, [
      { kind: 'image', target: 'app:1', digest: 'sha256:m', size: 10, mediaType: null, platforms: null },
      { kind: 'file', target: 'a.txt', digest: 'sha256:f', size: 7, mediaType: null, platforms: null },
    ], true);
    finishImport(db, job.id, 'imported', {});
  }
  createImport(db, { file: '/media/waiting.bin', source: 'inbox', actor: 'inbox', options: {} });
  setSetting(db, 'repo.address', '10.0.0.5');
  db.close();
  await ensurePki(layout, ['10.0.0.5']);
  await mkdir(layout.trustedKeysDir, { recursive: true });
  await writeFile(join(layout.trustedKeysDir, 'site.pub'), 'PUBLIC KEY\n');
  await writeFile(layout.configFile, 'retention:\n  keep: 2\n');
  const blobDir = join(layout.registry('images').data, 'docker/registry/v2/blobs/sha256/cc/cc');
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(blobDir, 'data'), Buffer.alloc(5000, 7));
  const uploads = join(layout.registry('images').data, 'docker/registry/v2/repositories/app/_uploads/u1');
  await mkdir(uploads, { recursive: true });
  await writeFile(join(uploads, 'data'), 'half an upload');
  await mkdir(join(layout.repoDir, '1.1.0'), { recursive: true });
  await writeFile(join(layout.repoDir, '1.1.0', 'a.txt'), 'file v1\n');
  await mkdir(join(layout.repoDir, '.1.2.0.partial-9'), { recursive: true });
  await writeFile(join(layout.repoDir, '.1.2.0.partial-9', 'x'), 'staging');
  await mkdir(join(layout.chartsDir, '.meta'), { recursive: true });
  await writeFile(join(layout.chartsDir, '.meta', 'm.json'), '{}');
  return layout;
}

/**
 * Every file under `dir` with its sha256 (the state a refused restore must leave as it
 * was). The database's -shm index is left out: SQLite makes it when it reads a WAL
 * database, even read-only, and it holds no content.
 */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.name === 'airgap.db-shm') continue;
      if (e.isDirectory()) await walk(p);
      else out[relative(dir, p)] = e.isFile() ? sha256(await readFile(p)) : 'other';
    }
  };
  await walk(dir);
  return out;
}

/** The entries of a tar file in order, with their bytes. */
async function entries(file: string | Buffer): Promise<Array<{ name: string; type: string; mode: number; body: Buffer }>> {
  const extract = tarStream.extract();
  (typeof file === 'string' ? createReadStream(file) : Readable.from([file])).pipe(extract);
  const out: Array<{ name: string; type: string; mode: number; body: Buffer }> = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ name: entry.header.name, type: entry.header.type ?? 'file', mode: entry.header.mode ?? 0, body: Buffer.concat(chunks) });
  }
  return out;
}

/** A tar of `list` (each entry a file unless it says otherwise). */
async function tarOf(list: Array<{ name: string; body?: Buffer; type?: string; linkname?: string }>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of list) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname ?? '/etc/passwd' });
    else pack.entry({ name: e.name, mode: 0o600 }, e.body ?? Buffer.alloc(0));
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const source = await makeState(join(work, 'source'));
const stateOnly = join(work, 'state-only.tar');
const withData = join(work, 'with-data.tar');
const stateResult = await writeBackupFile(source, stateOnly, { withData: false, airgapVersion: '9.9.9' });
const dataResult = await writeBackupFile(source, withData, { withData: true, airgapVersion: '9.9.9' });

t.test('a backup: one 0600 tar, backup.json first, manifest.json last with the sha256 of every entry', async (t) => {
  t.equal((await stat(stateOnly)).mode & 0o777, 0o600, 'written 0600');
  t.equal(stateResult.sha256, sha256(await readFile(stateOnly)), 'the reported sha256 is the file');
  t.equal(stateResult.bytes, (await stat(stateOnly)).size);
  const list = await entries(stateOnly);
  t.same(list.map((e) => e.name), [
    'backup.json', 'state/airgap.db', 'state/pki/ca.crt', 'state/pki/ca.key', 'state/pki/server.crt', 'state/pki/server.key',
    'state/trusted-keys/site.pub', 'state/config.yaml', 'manifest.json',
  ]);
  const header = JSON.parse(list[0]!.body.toString()) as BackupManifest;
  t.match(header, { format: 'airgap-backup', formatVersion: 1, airgapVersion: '9.9.9', schemaVersion: SCHEMA_VERSION, withData: false, files: 7 });
  const manifest = JSON.parse(list.at(-1)!.body.toString()) as BackupManifest;
  t.equal(manifest.entries.length, 7);
  for (const e of manifest.entries) {
    const entry = list.find((x) => x.name === e.path)!;
    t.equal(e.sha256, sha256(entry.body), `${e.path}: sha256 of its bytes`);
    t.equal(e.size, entry.body.length);
  }
  t.equal(list.find((e) => e.name === 'state/pki/ca.key')!.mode & 0o777, 0o600, 'keys keep 0600');
  t.same(list.find((e) => e.name === 'state/pki/ca.crt')!.body, await readFile(source.caCert));
  t.equal(list[1]!.body.subarray(0, 16).toString('latin1'), 'SQLite format 3\0', 'the database is an SQLite file (an online backup)');
});

t.test('with data: registry storage and repositories as they are, without uploads in flight or staging folders', async (t) => {
  const names = (await entries(withData)).map((e) => e.name);
  t.ok(names.includes('data/registries/images/data/docker/registry/v2/blobs/sha256/cc/cc/data'));
  t.ok(names.includes('data/repo/1.1.0/a.txt'));
  t.ok(names.includes('data/charts/.meta/m.json'), "the chart repository's metadata");
  t.notOk(names.some((n) => n.includes('_uploads')), 'no upload in flight');
  t.notOk(names.some((n) => n.includes('.partial')), 'no staging folder');
  t.equal(dataResult.withData, true);
});

t.test('restore without data: the same PKI, keys, config and records; releases need their .bin again', async (t) => {
  const target = stateLayout(join(work, 'fresh'));
  const r = await restoreBackup(createReadStream(stateOnly), target, { force: false });
  t.match(r, { withData: false, repoAddress: '10.0.0.5', current: '1.1.0', replaced: false, airgapVersion: '9.9.9' });
  t.same(r.reimport, ['airgap-v1.0.0.bin', 'airgap-v1.1.0.bin'], 'the .bin files to import again, oldest first');
  for (const f of ['pki/ca.crt', 'pki/ca.key', 'pki/server.crt', 'pki/server.key', 'trusted-keys/site.pub', 'config.yaml']) {
    t.same(await readFile(join(target.root, f)), await readFile(join(source.root, f)), f);
  }
  t.equal((await stat(target.caKey)).mode & 0o777, 0o600);
  const db = openDatabase(target.database);
  t.teardown(() => db.close());
  t.same(listReleases(db).map((x) => [x.version, x.current, x.needsReimport]), [['1.0.0', false, true], ['1.1.0', true, true]]);
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM import_blobs').get() as { n: number }).n, 0, 'no blob is on this box: the journal is forgotten');
  t.equal((db.prepare("SELECT state FROM imports WHERE file = '/media/waiting.bin'").get() as { state: string }).state, 'failed', 'an import the backup saw waiting is failed');
  t.ok(db.prepare("SELECT 1 FROM events WHERE kind = 'backup.restored'").get(), 'an event says so');
  t.same((await readdir(target.root)).filter((n) => n.startsWith('.')), [], 'no staging left');
});

t.test('restore with data: the files are back, nothing needs importing', async (t) => {
  const target = stateLayout(join(work, 'fresh-data'));
  const r = await restoreBackup(createReadStream(withData), target, { force: false });
  t.same(r.reimport, []);
  t.same(await readFile(join(target.repoDir, '1.1.0', 'a.txt'), 'utf8'), 'file v1\n');
  t.same(await readFile(join(target.registry('images').data, 'docker/registry/v2/blobs/sha256/cc/cc/data')), Buffer.alloc(5000, 7));
  const db = openDatabase(target.database);
  t.teardown(() => db.close());
  t.same(listReleases(db).map((x) => x.needsReimport), [false, false]);
  t.same([...releaseDiskUse(db).entries()], [['1.0.0', { bytes: 1107, exclusiveBytes: 1007 }], ['1.1.0', { bytes: 5107, exclusiveBytes: 5007 }]], 'disk use from the journal: the shared blob counts in neither exclusive figure');
});

t.test('a state dir in use is replaced only with --force, and then whole', async (t) => {
  const busy = await makeState(join(work, 'busy'));
  await writeFile(join(busy.root, 'airgap.db-wal'), 'a stale WAL of another database');
  await mkdir(busy.inboxDir, { recursive: true });
  await writeFile(join(busy.inboxDir, 'keep.bin'), 'a .bin waiting');
  await writeFile(join(busy.root, '.firstboot-done'), '');
  const before = await snapshot(busy.root);
  await t.rejects(restoreBackup(createReadStream(stateOnly), busy, { force: false }), { code: 'AG_STATE_EXISTS', message: /is in use \(2 release\(s\), repo address 10\.0\.0\.5\)/ });
  t.same(await snapshot(busy.root), before, 'nothing changed');
  const r = await restoreBackup(createReadStream(stateOnly), busy, { force: true });
  t.equal(r.replaced, true);
  const after = await snapshot(busy.root);
  t.notOk(after['airgap.db-wal'] === before['airgap.db-wal'], "the old database's WAL is gone with it");
  t.notOk(Object.keys(after).some((p) => p.startsWith('repo/') || p.startsWith('registries/')), "without data, the old box's registries and files go too");
  t.same((await readdir(busy.root)).filter((n) => n.startsWith('.')), ['.firstboot-done'], 'no staging or aside folder left');
  t.ok(after['inbox/keep.bin'] !== undefined && after['.firstboot-done'] !== undefined, 'what a restore does not know stays: the inbox, the first-boot marker');
});

t.test('bad backups are refused and the state dir stays as it was', async (t) => {
  const good = await entries(stateOnly);
  const manifest = JSON.parse(good.at(-1)!.body.toString()) as BackupManifest;
  const rebuilt = (change: (list: typeof good) => typeof good) => tarOf(change(good.map((e) => ({ ...e }))));
  const target = stateLayout(join(work, 'victim'));
  await mkdir(target.root, { recursive: true });
  await writeFile(join(target.root, 'keep-me'), 'x');
  const before = await snapshot(target.root);
  const whole = await readFile(stateOnly);
  const flipped = Buffer.from(whole);
  const caAt = whole.indexOf(Buffer.from('-----BEGIN CERTIFICATE-----'));
  flipped[caAt + 40] = flipped[caAt + 40]! ^ 0x01;
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['truncated', whole.subarray(0, Math.floor(whole.length / 2)), 'AG_BACKUP_DAMAGED', /truncated|cannot be read/],
    ['a flipped byte in the CA', flipped, 'AG_BACKUP_DAMAGED', /"state\/pki\/ca\.crt" has other bytes/],
    ['not a backup', await tarOf([{ name: 'hello.txt', body: Buffer.from('hi') }]), 'AG_BACKUP_FORMAT', /does not start with backup\.json/],
    ['not a tar', Buffer.from('#!/bin/sh\necho this is a shell script\n'.repeat(50)), 'AG_BACKUP_DAMAGED', /cannot be read|truncated/],
    ['a newer layout', await rebuilt((l) => [{ ...l[0]!, body: Buffer.from(JSON.stringify({ ...JSON.parse(l[0]!.body.toString()), formatVersion: 2 })) }, ...l.slice(1)]), 'AG_BACKUP_FORMAT', /layout 2/],
    ['a path out of the state dir', await rebuilt((l) => [l[0]!, { ...l[1]!, name: 'state/../../evil' }, ...l.slice(2)]), 'AG_BACKUP_DAMAGED', /not a plain relative path/],
    ['a file the layout does not have', await rebuilt((l) => [l[0]!, { ...l[1]!, name: 'state/registries/images/htpasswd' }, ...l.slice(2)]), 'AG_BACKUP_DAMAGED', /not a part of the state/],
    ['a symlink', await tarOf([good[0]!, { name: 'state/pki/ca.crt', type: 'symlink' }]), 'AG_BACKUP_DAMAGED', /of type symlink/],
    ['data in a backup without data', await rebuilt((l) => [l[0]!, { ...l[1]!, name: 'data/repo/x' }, ...l.slice(2)]), 'AG_BACKUP_DAMAGED', /holds data/],
    ['an entry twice', await rebuilt((l) => [l[0]!, l[1]!, l[1]!, ...l.slice(2)]), 'AG_BACKUP_DAMAGED', /twice/],
    ['an entry after the manifest', await rebuilt((l) => [...l, { ...l[2]!, name: 'state/pki/extra.crt' }]), 'AG_BACKUP_DAMAGED', /after manifest\.json/],
    ['an entry the manifest does not list', await rebuilt((l) => [...l.slice(0, -1), { ...l[2]!, name: 'state/trusted-keys/planted.pub' }, l.at(-1)!]), 'AG_BACKUP_DAMAGED', /lists 7 entries, the file holds 8/],
    ['no manifest', await rebuilt((l) => l.slice(0, -1)), 'AG_BACKUP_DAMAGED', /truncated/],
    ['a manifest that lists one entry twice and leaves another out', await rebuilt((l) => {
      const m = { ...manifest, entries: manifest.entries.map((e, i) => (i === 2 ? manifest.entries[1]! : e)) };
      return [...l.slice(0, -1), { ...l.at(-1)!, body: Buffer.from(JSON.stringify(m)) }];
    }), 'AG_BACKUP_DAMAGED', /missing|twice/],
    ['a header that announces other counts', await rebuilt((l) => {
      const h = { ...(JSON.parse(l[0]!.body.toString()) as Record<string, unknown>), files: 99 };
      const m = { ...manifest, files: 99 };
      return [{ ...l[0]!, body: Buffer.from(JSON.stringify(h)) }, ...l.slice(1, -1), { ...l.at(-1)!, body: Buffer.from(JSON.stringify(m)) }];
    }), 'AG_BACKUP_DAMAGED', /announces 99 entries/],
    ['a damaged database', await rebuilt((l) => {
      const db = Buffer.from(l[1]!.body);
      db.fill(0x5a, 100, 4096);
      const m = { ...manifest, entries: manifest.entries.map((e) => (e.path === 'state/airgap.db' ? { ...e, sha256: sha256(db) } : e)) };
      return [l[0]!, { ...l[1]!, body: db }, ...l.slice(2, -1), { ...l.at(-1)!, body: Buffer.from(JSON.stringify(m)) }];
    }), 'AG_DB_', /database/],
  ];
  for (const [what, bytes, code, message] of cases) {
    await t.rejects(restoreBackup(Readable.from([bytes]), target, { force: true }), { code: code.endsWith('_') ? new RegExp(`^${code}`) : code, message }, what);
    t.same(await snapshot(target.root), before, `${what}: the state dir is as it was`);
  }
});

t.test('a state dir that only a first start made (no release, no address) is replaced without --force', async (t) => {
  const fresh = stateLayout(join(work, 'first-start'));
  await mkdir(fresh.root, { recursive: true });
  openDatabase(fresh.database).close();
  await ensurePki(fresh, ['127.0.0.1']);
  const r = await restoreBackup(createReadStream(stateOnly), fresh, { force: false });
  t.equal(r.replaced, false);
  t.same(await readFile(fresh.caCert), await readFile(source.caCert), 'the backup CA replaced the one the first start made');
});

t.test('a link or a sub-folder in the PKI or trusted keys is not taken into the backup', async (t) => {
  const linked = await makeState(join(work, 'linked'));
  await symlink('/etc/hostname', join(linked.trustedKeysDir, 'link.pub'));
  await mkdir(join(linked.trustedKeysDir, 'retired'));
  await writeFile(join(linked.trustedKeysDir, 'retired', 'old.pub'), 'OLD KEY\n');
  const out = join(work, 'linked.tar');
  await writeBackupFile(linked, out, { withData: false, airgapVersion: '9.9.9' });
  const names = (await entries(out)).map((e) => e.name);
  t.notOk(names.some((n) => n.endsWith('link.pub')));
  t.notOk(names.some((n) => n.includes('retired')), 'a sub-folder of trusted-keys is not state (restore would refuse it)');
  const target = stateLayout(join(work, 'from-linked'));
  await restoreBackup(createReadStream(out), target, { force: false });
  t.pass('and the backup restores');
});

t.test('writing a backup where it cannot be written says where, and leaves no partial file', async (t) => {
  await t.rejects(writeBackupFile(source, join(work, 'no-such-dir', 'b.tar'), { withData: false, airgapVersion: '9.9.9' }), { code: 'AG_BACKUP_OUT', message: /no such folder/ });
  await t.rejects(writeBackupFile(source, join(source.repoDir, 'b.tar'), { withData: false, airgapVersion: '9.9.9' }), { code: 'AG_BACKUP_OUT', message: /inside the state dir/ }, 'never under repo/, where it would be served');
  t.same((await readdir(work)).filter((n) => n.includes('.partial')), []);
});

t.test('config.yaml: retention.keep, and errors that name the file', async (t) => {
  t.same(parseSettings('', 'c.yaml'), { retention: { keep: null } });
  t.same(parseSettings('retention:\n  keep: 3\n', 'c.yaml'), { retention: { keep: 3 } });
  t.throws(() => parseSettings('retention:\n  kepe: 3\n', 'c.yaml'), { code: 'AG_CONFIG', message: /c\.yaml: unknown setting 'retention\.kepe'/ });
  t.throws(() => parseSettings('keep: 3\n', 'c.yaml'), { code: 'AG_CONFIG', message: /unknown setting 'keep'/ });
  t.throws(() => parseSettings('retention:\n  keep: 0\n', 'c.yaml'), { code: 'AG_CONFIG', message: /whole number from 1/ });
  t.throws(() => parseSettings('retention: [\n', 'c.yaml'), { code: 'AG_CONFIG' });
});

t.test('the full-volume warning names the prune that brings the volume back under 80 %', async (t) => {
  const releases = [
    { version: '1.0.0', current: false, importedAt: '1' },
    { version: '1.1.0', current: false, importedAt: '2' },
    { version: '1.2.0', current: true, importedAt: '3' },
  ];
  const use = new Map([['1.0.0', { exclusiveBytes: 5e9 }], ['1.1.0', { exclusiveBytes: 10e9 }], ['1.2.0', { exclusiveBytes: 1e9 }]]);
  t.match(fullVolumeWarning({ totalBytes: 100e9, usedBytes: 84e9 }, releases, use), /84% full .*'airgap prune --keep 2' gives back about 5(\.0)? GB/);
  t.match(fullVolumeWarning({ totalBytes: 100e9, usedBytes: 90e9 }, releases, use), /'airgap prune --keep 1' gives back about 15(\.0)? GB/);
  t.match(fullVolumeWarning({ totalBytes: 100e9, usedBytes: 90e9 }, [releases[2]!], use), /grow the disk/);
});
