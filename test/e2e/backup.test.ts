/**
 * Years on one disk, with the real daemon and registries: disk use per release, what
 * failed imports leave collected by `airgap gc`, a daemon killed with -9 in the middle of
 * garbage collection, backup and restore into other state dirs (the same `airgap setup
 * --json` output; without data the releases come back by importing their .bin files,
 * with data at once), and the retention policy of config.yaml.
 */
import t from 'tap';
import { copyFile, mkdir, readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { makeBusyboxLayout, makeFiles, writeSyntheticLayout } from '../helpers/fixtures.js';
import { airgap, eventsSince, isAlive, lastEventId, startDaemon, waitFor, type TestDaemon } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

interface Account { url: string; username: string; password: string }
interface Details { repository: Account; imageRegistry: Account; packRegistry: Account; caCertificateBase64: string }
interface ReleasesDoc { current: string | null; releases: Array<{ version: string; current: boolean; needsReimport: boolean; diskBytes: number; exclusiveBytes: number }> }

const work = await tempDir(t, 'airgap-backup-e2e-');
const keys = await generateSigningKeys(join(work, 'keys'));
const shared = randomBytes(400_000);
const onlyV1 = randomBytes(300_000);
const onlyV2 = randomBytes(200_000);
const onlyV3 = randomBytes(100_000);
await makeBusyboxLayout(join(work, 'images'), work);
await writeSyntheticLayout(join(work, 'images'), [
  { ref: 'app-1', layers: [shared, onlyV1] },
  { ref: 'app-2', layers: [shared, onlyV2] },
  { ref: 'app-3', layers: [shared, onlyV3] },
]);
await makeFiles(join(work, 'manifests'));

async function build(version: string, app: string): Promise<string> {
  const spec = join(work, `bundle-${version}.yaml`);
  await writeFile(spec, stringify({
    apiVersion: 'airgap/v1',
    kind: 'Bundle',
    name: 'demo',
    version,
    images: [
      { source: 'oci:./images:busybox', target: 'library/busybox:1.35' },
      { source: `oci:./images:${app}`, target: `apps/app:${version}` },
    ],
    files: [{ source: './manifests/', target: 'manifests/' }],
  }));
  const out = join(work, `out-${version}`);
  await mkdir(out);
  return (await buildBundle({ specPath: spec, out, privateKeyPath: keys.privateKeyPath })).path;
}
const v1 = await build('1.0.0', 'app-1');
const v2 = await build('1.1.0', 'app-2');
const v3 = await build('1.2.0', 'app-3');
const v4 = await build('1.3.0', 'app-1');

// The registry binary through a gate: `garbage-collect` waits for the file GATE, so a test
// can hold a collection open; everything else is the real docker-registry at once.
const gate = join(work, 'gc-gate');
const registryBin = join(work, 'registry-gated');
await writeFile(registryBin, `#!/bin/sh\nif [ "$1" = garbage-collect ]; then\n  while [ ! -e '${gate}' ]; do sleep 0.1; done\nfi\nexec docker-registry "$@"\n`);
await chmod(registryBin, 0o755);
const daemonEnv = { AIRGAP_REGISTRY_BIN: registryBin };

let daemon: TestDaemon = await startDaemon(t, { env: daemonEnv });
const stateA = daemon.stateDir;
const ports = daemon.ports;
await copyFile(keys.publicKeyPath, join(stateA, 'trusted-keys', 'build.pub'));
const setupA = (await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout;
const details = JSON.parse(setupA) as Details;
const certDir = join(work, 'certs');
await mkdir(certDir);
await mkdir(join(work, 'pulled'));
await writeFile(join(certDir, 'ca.crt'), Buffer.from(details.caCertificateBase64, 'base64'));
const host = details.imageRegistry.url.replace('https://', '');
const creds = `${details.imageRegistry.username}:${details.imageRegistry.password}`;

async function importOk(d: TestDaemon, file: string, extra: string[] = []): Promise<{ action: string; status: string }> {
  const r = await d.cli(['import', file, '--json', ...extra]);
  if (r.exitCode !== 0) throw new Error(`import of ${file} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { action: string; status: string };
}
const releasesOf = async (d: TestDaemon) => JSON.parse((await d.cli(['releases', '--json'])).stdout) as ReleasesDoc;
/** Pulls `ref` whole (every blob) with skopeo, as a node would; throws when a blob is missing. */
const pull = (ref: string) => execa('skopeo', ['copy', '--src-cert-dir', certDir, '--src-creds', creds, `docker://${host}/${ref}`, `oci:${join(work, 'pulled', randomBytes(4).toString('hex'))}:x`]);
const tagsOf = async (repository: string) =>
  (JSON.parse((await execa('curl', ['-s', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${details.imageRegistry.url}/v2/${repository}/tags/list`])).stdout) as { tags?: string[] | null }).tags ?? [];
const catalog = async () => (JSON.parse((await execa('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${details.imageRegistry.url}/v2/_catalog`])).stdout) as { repositories: string[] }).repositories;
async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) n += e.isDirectory() ? await treeBytes(join(dir, e.name)) : (await stat(join(dir, e.name))).size;
  return n;
}
const imagesData = (root: string) => join(root, 'registries', 'images', 'data');

await importOk(daemon, v1);
await importOk(daemon, v2);

/** startDaemon's teardown belongs to the whole file: a daemon started in one subtest serves the next. */
const root = t;

t.test('disk use per release: what each holds, and what deleting it frees (its own blobs and files)', async (t) => {
  const doc = await releasesOf(daemon);
  const [r1, r2] = doc.releases;
  t.ok(r1!.diskBytes > shared.length + onlyV1.length, `1.0.0 holds ${r1!.diskBytes} bytes`);
  t.ok(r1!.exclusiveBytes >= onlyV1.length && r1!.exclusiveBytes < r1!.diskBytes - shared.length, `and frees ${r1!.exclusiveBytes}: not the shared layer, not busybox`);
  // Both hold the same files and a manifest each: their own layers make the difference.
  const difference = r1!.exclusiveBytes - r2!.exclusiveBytes;
  t.ok(Math.abs(difference - (onlyV1.length - onlyV2.length)) < 5_000, `1.0.0 frees ${difference} bytes more than 1.1.0`);
  const text = await daemon.cli(['releases']);
  t.match(text.stdout, /disk\s+frees/);
});

t.test("gc collects what failed imports leave: uploads, staging folders, manifests no release names", async (t) => {
  // A manifest no release names (pushed with the registry's account), an upload session left open, a staging folder.
  await execa('skopeo', ['copy', '--dest-cert-dir', certDir, '--dest-creds', creds, `oci:${join(work, 'images')}:app-3`, `docker://${host}/leftover/thing:x`]);
  const upload = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${details.imageRegistry.url}/v2/apps/app/blobs/uploads/`]);
  t.equal(upload.stdout, '202', 'an upload session is open');
  await mkdir(join(stateA, 'repo', '.9.9.9.partial-7', 'x'), { recursive: true });
  t.ok((await catalog()).includes('leftover/thing'));
  await writeFile(gate, '');
  const r = await daemon.cli(['gc', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const gc = JSON.parse(r.stdout) as { leftovers: { uploads: number; stagingFolders: number; manifests: number }; bytesReclaimed: number; registries: Array<{ repositoriesRemoved: number }> };
  t.ok(gc.leftovers.uploads >= 1, `${gc.leftovers.uploads} upload sessions`);
  t.equal(gc.leftovers.stagingFolders, 1);
  t.equal(gc.leftovers.manifests, 1, 'the manifest no release names');
  t.ok(gc.bytesReclaimed >= onlyV3.length, `and its blobs: ${gc.bytesReclaimed} bytes given back`);
  t.ok(gc.registries[0]!.repositoriesRemoved >= 1);
  t.notOk((await catalog()).includes('leftover/thing'), 'its repository is out of the catalog');
  await pull('apps/app:1.0.0');
  await pull('apps/app:1.1.0');
  t.pass('every release still pulls whole');
});

t.test('kill -9 in the middle of garbage collection: the next start stops it, every kept release pulls whole, and gc gives the disk back', async (t) => {
  await import('node:fs/promises').then((fs) => fs.rm(gate, { force: true }));
  const before = await treeBytes(imagesData(stateA));
  const mark = await lastEventId(stateA);
  const deleting = daemon.cli(['releases', 'delete', '1.0.0', '--json']);
  const gcPid = join(stateA, 'registries', 'images', 'gc.pid');
  await waitFor(async () => (await stat(gcPid).catch(() => undefined)) !== undefined, 30);
  const pid = Number((await readFile(gcPid, 'utf8')).trim());
  t.ok(isAlive(pid), 'garbage-collect is running');
  daemon.child.kill('SIGKILL');
  await daemon.child.catch(() => {});
  t.not((await deleting).exitCode, 0, 'the delete did not get to report');
  t.ok(isAlive(pid), 'the killed daemon left it running');

  daemon = await startDaemon(root, { stateDir: stateA, ports, env: daemonEnv });
  t.notOk(isAlive(pid), 'the next start stopped it before the registry served again');
  const events = await eventsSince(stateA, mark);
  t.ok(events.some((e) => e.kind === 'gc.orphan_stopped'), 'and says so');
  t.same((await releasesOf(daemon)).releases.map((r) => r.version), ['1.1.0'], 'the delete had been recorded before GC');
  t.notOk((await tagsOf('apps/app')).includes('1.0.0'), "1.0.0's tag is gone");
  await pull('apps/app:1.1.0');
  await pull('library/busybox:1.35');
  t.pass('1.1.0 pulls whole');
  t.equal((await daemon.cli(['status'])).exitCode, 0, 'the box is healthy');

  await writeFile(gate, '');
  const r = await daemon.cli(['gc', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.ok(before - (await treeBytes(imagesData(stateA))) >= onlyV1.length, 'the layer only 1.0.0 held is given back');
});

const backupState = join(work, 'backups', 'state.tar');
const backupData = join(work, 'backups', 'data.tar');

t.test('backup while the daemon runs: state only, and with data', async (t) => {
  await mkdir(join(work, 'backups'));
  const mark = await lastEventId(stateA);
  const r = await daemon.cli(['backup', '--out', backupState, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { file: backupState, withData: false });
  t.equal((await stat(backupState)).mode & 0o777, 0o600, 'written 0600');
  const d = await daemon.cli(['backup', '--out', backupData, '--with-data', '--json']);
  t.equal(d.exitCode, 0, d.stderr);
  const result = JSON.parse(d.stdout) as { bytes: number; sha256: string };
  t.ok(result.bytes > shared.length + onlyV2.length, 'the data is in it');
  t.equal(result.sha256, createHash('sha256').update(await readFile(backupData)).digest('hex'));
  t.same((await eventsSince(stateA, mark)).map((e) => e.kind), ['backup.written', 'backup.written']);
  t.equal((await daemon.cli(['restore', backupState, '--force'])).exitCode, 1, 'a restore under a running daemon is refused, even with --force');
});

t.test('restore without data into a fresh state dir: the same setup output; the releases come back by importing their .bin files', async (t) => {
  t.equal((await daemon.stop()).exitCode, 0);
  const stateB = join(await tempDir(t, 'airgap-restore-b-'), 'state');
  const r = await airgap(['restore', backupState, '--state-dir', stateB, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const restored = JSON.parse(r.stdout) as { reimport: string[]; current: string; withData: boolean };
  t.same(restored.reimport, ['airgap-v1.1.0.bin']);
  const b = await startDaemon(t, { stateDir: stateB, ports });
  t.equal((await b.cli(['setup', '127.0.0.1', '--json'])).stdout, setupA, 'the same CA, certificate, URLs and credentials');
  const status = JSON.parse((await b.cli(['status', '--json'])).stdout) as { warnings: string[] };
  t.match(status.warnings.join('\n'), /restored from a backup without their data \(1\.1\.0\)/);
  t.same((await releasesOf(b)).releases.map((x) => [x.version, x.current, x.needsReimport]), [['1.1.0', true, true]]);
  const again = await importOk(b, v2);
  t.same([again.status, again.action], ['imported', 'repair'], 'the import repairs the recorded release');
  t.same((await releasesOf(b)).releases.map((x) => [x.version, x.current, x.needsReimport]), [['1.1.0', true, false]]);
  await pull('apps/app:1.1.0');
  t.pass('and it pulls whole');
  t.equal((await b.stop()).exitCode, 0);
});

t.test('restore with data: every release is served at once', async (t) => {
  const stateC = join(await tempDir(t, 'airgap-restore-c-'), 'state');
  const r = await airgap(['restore', backupData, '--state-dir', stateC]);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /Every release is served as it was/);
  const c = await startDaemon(t, { stateDir: stateC, ports });
  t.equal((await c.cli(['setup', '127.0.0.1', '--json'])).stdout, setupA);
  t.same((await releasesOf(c)).releases.map((x) => x.needsReimport), [false]);
  await pull('apps/app:1.1.0');
  const file = await execa('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), '-u', `${details.repository.username}:${details.repository.password}`, `${details.repository.url}/repo/releases.json`]);
  t.match(JSON.parse(file.stdout), { current: '1.1.0' });
  t.equal((await c.stop()).exitCode, 0);
});

t.test('restore refuses a state dir in use without --force; backup works with the daemon stopped', async (t) => {
  const db = await readFile(join(stateA, 'airgap.db'));
  const r = await airgap(['restore', backupState, '--state-dir', stateA]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /is in use .*\[AG_STATE_EXISTS\]/);
  t.match(r.stderr, /--force/);
  t.same(await readFile(join(stateA, 'airgap.db')), db, 'nothing changed');
  const offline = join(work, 'backups', 'offline.tar');
  const b = await airgap(['backup', '--out', offline, '--state-dir', stateA, '--json']);
  t.equal(b.exitCode, 0, b.stderr);
  t.equal((await stat(offline)).mode & 0o777, 0o600);
});

t.test('prune to one: the registry storage falls by what only the older release held; the kept one pulls whole', async (t) => {
  daemon = await startDaemon(root, { stateDir: stateA, ports, env: daemonEnv });
  await importOk(daemon, v3);
  const older = (await releasesOf(daemon)).releases.find((r) => r.version === '1.1.0')!;
  t.ok(older.exclusiveBytes < older.diskBytes - shared.length, `1.1.0 frees ${older.exclusiveBytes} of its ${older.diskBytes} bytes: the shared layer and busybox stay with 1.2.0`);
  const before = await treeBytes(imagesData(stateA));
  const r = await daemon.cli(['prune', '--keep', '1', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const pruned = JSON.parse(r.stdout) as { deleted: string[]; gc: { registries: Array<{ name: string; bytesReclaimed: number }> } };
  t.same(pruned.deleted, ['1.1.0']);
  t.same(pruned.gc.registries.map((g) => g.name), ['images', 'packs'], 'garbage-collect ran on both registries');
  const fell = before - (await treeBytes(imagesData(stateA)));
  // What 1.1.0 alone held: its own layer and its manifests and config in the registry; its files were in repo/.
  t.ok(fell >= onlyV2.length && fell <= older.exclusiveBytes, `the registry storage fell by ${fell} bytes (1.1.0 alone held ${older.exclusiveBytes}, files included)`);
  t.notOk((await tagsOf('apps/app')).includes('1.1.0'), "1.1.0's tag is gone");
  await pull('apps/app:1.2.0');
  await pull('library/busybox:1.35');
  t.pass('1.2.0 pulls whole');
});

t.test('retention: config.yaml keep 1 deletes the older release after the next import', async (t) => {
  await writeFile(join(stateA, 'config.yaml'), 'retention:\n  keep: 1\n');
  const status = JSON.parse((await daemon.cli(['status', '--json'])).stdout) as { retention: { keep: number } };
  t.same(status.retention, { keep: 1 });
  const mark = await lastEventId(stateA);
  await importOk(daemon, v4);
  await waitFor(async () => (await eventsSince(stateA, mark)).some((e) => e.kind === 'retention.applied' || e.kind === 'retention.failed'), 60);
  const events = await eventsSince(stateA, mark);
  t.ok(events.some((e) => e.kind === 'retention.applied'), events.map((e) => `${e.kind}: ${e.message}`).join('\n'));
  t.ok(events.some((e) => e.kind === 'gc.finished'), 'garbage-collect ran');
  t.same((await releasesOf(daemon)).releases.map((r) => r.version), ['1.3.0']);
  t.notOk((await tagsOf('apps/app')).includes('1.2.0'), "1.2.0's tag is gone");
  await pull('apps/app:1.3.0');
  t.pass('1.3.0 pulls whole');
  await writeFile(join(stateA, 'config.yaml'), 'retention:\n  kepe: 1\n');
  const bad = await daemon.cli(['status']);
  t.equal(bad.exitCode, 1, 'a config.yaml with a typo is a problem status reports');
  t.match(bad.stdout, /unknown setting 'retention\.kepe'/);
});
