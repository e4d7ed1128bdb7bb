/**
 * A disk that fills during an import, against the real daemon and registries on a small
 * tmpfs state dir: the import fails with AG_NO_SPACE and one sentence, the daemon and its
 * registries stay up, the failure is recorded (not retried at the next start), the blobs it
 * was writing into the registries' storage (ADR 0008) are removed, and once space is freed
 * the same file imports.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { AIRGAP, adminGet, isAlive, registryStatus, startDaemon, waitFor, queryState } from '../helpers/appliance.js';
import { writeSyntheticLayout } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-disk-full-test-');
const mountPoint = join(await tempDir(t, 'airgap-disk-full-mnt-'), 'state');
await mkdir(mountPoint);
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
} catch (err) {
  t.plan(0, `a tmpfs cannot be mounted here (needs root): ${String((err as Error).message).split('\n')[0]}`);
  process.exit(0);
}
t.teardown(() => execFileSync('umount', ['-l', mountPoint]));

const keys = await generateSigningKeys(join(work, 'keys'));
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'big', layers: Array.from({ length: 60 }, () => randomBytes(1024 * 1024)) }]);
await writeFile(join(work, 'bundle.yaml'), stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'full', version: '1.0.0', images: [{ source: 'oci:./images:big', target: 'full/big:1.0.0' }] }));
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: work, privateKeyPath: keys.privateKeyPath })).path;

const daemon = await startDaemon(t, { stateDir: mountPoint });
const stateDir = daemon.stateDir;
await copyFile(keys.publicKeyPath, join(stateDir, 'trusted-keys', 'build.pub'));

const query = <T>(sql: string): T[] => queryState<T>(stateDir, sql);

/** Writes zeros into `file` until the volume refuses more. */
async function fillVolume(file: string): Promise<void> {
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(1024 * 1024);
  try {
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Every file left in the registries' upload folders (distribution's `_uploads`, the
 * import's `incoming`), and every empty `link` file.
 */
async function uploadLeftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string, inUploads: boolean): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const path = join(d, e.name);
      if (e.isDirectory()) await walk(path, inUploads || e.name === '_uploads' || e.name === 'incoming');
      else if (inUploads || (e.name === 'link' && (await stat(path)).size === 0)) found.push(path);
    }
  };
  await walk(dir, false);
  return found;
}

t.test('the disk fills mid-import: AG_NO_SPACE, the daemon stays up, and the same file imports once there is room', async (t) => {
  const registries = [(await registryStatus(stateDir, 'images')).pid!, (await registryStatus(stateDir, 'packs')).pid!];
  const daemonPid = Number((await readFile(join(stateDir, 'daemon.pid'), 'utf8')).trim());
  // Hold the daemon still the moment it starts writing blobs into the images registry's
  // storage (it makes `incoming/` first), so the disk surely fills mid-way.
  const writing = new Promise<void>((resolve) => {
    const watcher = watch(join(stateDir, 'registries', 'images'), (_event, name) => {
      if (name !== 'incoming') return;
      process.kill(daemonPid, 'SIGSTOP');
      watcher.close();
      resolve();
    });
  });
  const importing = execa(AIRGAP, ['import', bin, '--json', '--state-dir', stateDir], { reject: false });
  await writing;
  t.pass('the import is writing blobs');
  const filler = join(stateDir, 'filler');
  await fillVolume(filler);
  const fs = await statfs(stateDir);
  t.ok(fs.bavail * fs.bsize < 1024 * 1024, 'the volume is full');
  process.kill(daemonPid, 'SIGCONT');

  const r = await importing;
  t.equal(r.exitCode, 1, 'the import failed');
  t.equal(r.stdout, '', 'no JSON result for a failed import');
  t.match(r.stderr, new RegExp(`the disk of ${stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is full .* \\[AG_NO_SPACE\\]`));
  t.match(r.stderr, /hint: free space on that volume/);
  const status = await adminGet<{ problems: string[]; registries: Array<{ healthy: boolean }> }>(stateDir, '/v1/status');
  t.ok(status.registries.every((r) => r.healthy), 'the daemon answers and both registries are healthy');
  // The volume may or may not be under 5 % free by now (the space reserve was given back to record the failure).
  t.same(status.problems.filter((p) => !/the registry volume has only \d+% free/.test(p)), [], 'nothing but the volume is reported as a problem');
  t.ok(registries.every(isAlive), 'the registries are the same processes, still supervised');
  t.same(query<{ state: string; code: string }>("SELECT state, error_code AS code FROM imports ORDER BY id DESC LIMIT 1"), [{ state: 'failed', code: 'AG_NO_SPACE' }], 'the failure is recorded, so no restart retries it');
  t.same(await uploadLeftovers(join(stateDir, 'registries')), [], 'no aborted upload and no empty link is left');

  // Full again, with no import running: the import is refused with its own code. Whether the
  // queueing itself fails (SQLite cannot grow its WAL) or the queued import's first stage
  // does (SQLite found room in pages it already had) depends on the database's pages, not on
  // the product: both say the disk is full, with AG_NO_SPACE and what to do.
  await fillVolume(join(stateDir, 'filler-2'));
  const queued = await execa(AIRGAP, ['import', bin, '--state-dir', stateDir], { reject: false });
  t.equal(queued.exitCode, 1);
  t.match(queued.stderr, /\[AG_NO_SPACE\]/, queued.stderr);
  t.match(queued.stderr, /the disk of (the state dir|\S+) is full|not enough free space/, 'it says the disk is full');
  t.ok(await waitFor(async () => (await adminGet<{ registries: Array<{ healthy: boolean }> }>(stateDir, '/v1/status')).registries.length === 2), 'the daemon still answers');

  await rm(filler);
  await rm(join(stateDir, 'filler-2'));
  const again = await execa(AIRGAP, ['import', bin, '--json', '--state-dir', stateDir], { reject: false });
  t.equal(again.exitCode, 0, again.stderr);
  t.match(JSON.parse(again.stdout) as object, { status: 'imported', version: '1.0.0' });
});
