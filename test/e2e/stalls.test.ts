/**
 * The queue always moves, against the real daemon and registries: a .bin that shrinks under
 * its import fails it at once with AG_FILE_CHANGED (and the import queued behind it runs);
 * a registry that stops answering (SIGSTOP) is killed and restarted by the supervisor, and
 * an import that was pushing to it finishes.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { AIRGAP, eventsSince, isAlive, lastEventId, registryStatus, startDaemon, waitFor, queryState } from '../helpers/appliance.js';
import { writeSyntheticLayout } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-stalls-test-');
const keys = await generateSigningKeys(join(work, 'keys'));

/** A signed release whose image has `layers` layers of `layerBytes` random bytes. */
async function release(version: string, layers: number, layerBytes: number): Promise<string> {
  const ref = `img-${version}`;
  await writeSyntheticLayout(join(work, 'images'), [{ ref, layers: Array.from({ length: layers }, () => randomBytes(layerBytes)) }]);
  const spec = join(work, `bundle-${version}.yaml`);
  await writeFile(spec, stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'stalls', version, images: [{ source: `oci:./images:${ref}`, target: `stalls/img:${version}` }] }));
  const out = join(work, `out-${version}`);
  await mkdir(out, { recursive: true });
  return (await buildBundle({ specPath: spec, out, privateKeyPath: keys.privateKeyPath })).path;
}

/**
 * These subtests hold an import mid-way by stopping the registry it uploads to, so their
 * daemons upload blobs through the registry's API (AIRGAP_IMPORT_BLOBS=http), as `airgap
 * push` does, and journal each blob as the registry takes it; by default blobs go straight
 * into the storage (ADR 0008) and the registry sees only manifests and tags.
 */
const HTTP_BLOBS = { AIRGAP_IMPORT_BLOBS: 'http' };

/** A daemon for one subtest, trusting the build key; stopped when the subtest ends. */
async function daemonFor(t: Test, env: Record<string, string> = {}): Promise<string> {
  const daemon = await startDaemon(t, { env: { ...HTTP_BLOBS, ...env } });
  await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
  return daemon.stateDir;
}

function pushedBlobs(stateDir: string): number {
  return queryState<{ n: number }>(stateDir, "SELECT COUNT(*) AS n FROM import_blobs ib JOIN imports i ON i.id = ib.import_id WHERE i.state = 'running'")[0]!.n;
}

t.test('a .bin that shrinks under its import fails it at once, and the next import in the queue runs', async (t) => {
  const stateDir = await daemonFor(t);
  const big = await release('1.0.0', 40, 512 * 1024);
  const small = await release('1.0.1', 2, 50_000);
  const first = execa(AIRGAP, ['import', big, '--json', '--state-dir', stateDir], { reject: false });
  t.ok(await waitFor(() => pushedBlobs(stateDir) >= 1, 60), 'blobs are being pushed');
  // Hold the registry still, so the import is surely mid-way when the file shrinks.
  const registry = (await registryStatus(stateDir, 'images')).pid!;
  process.kill(registry, 'SIGSTOP');
  const second = execa(AIRGAP, ['import', small, '--json', '--state-dir', stateDir], { reject: false });
  await truncate(big, Math.floor((await stat(big)).size / 2));

  const a = await first;
  process.kill(registry, 'SIGCONT');
  t.equal(a.exitCode, 1, 'the shrunk import failed');
  t.match(a.stderr, /changed size \(\d+ → \d+ bytes\) while it was being imported \[AG_FILE_CHANGED\]/);
  t.match(a.stderr, /hint: let the copy finish/);
  const b = await second;
  t.equal(b.exitCode, 0, `the queued import ran: ${b.stderr}`);
  t.match(JSON.parse(b.stdout) as object, { status: 'imported', version: '1.0.1' });
});

t.test('a registry that stops answering is killed and restarted, and the import pushing to it finishes', async (t) => {
  const stateDir = await daemonFor(t, { AIRGAP_STALL_SECONDS: '5' });
  const file = await release('1.1.0', 24, 512 * 1024);
  const before = await registryStatus(stateDir, 'images');
  const lastEvent = await lastEventId(stateDir);
  const running = execa(AIRGAP, ['import', file, '--json', '--state-dir', stateDir], { reject: false });
  t.ok(await waitFor(() => pushedBlobs(stateDir) >= 1, 60), 'blobs are being pushed');
  process.kill(before.pid!, 'SIGSTOP');
  t.teardown(() => {
    if (isAlive(before.pid!)) process.kill(before.pid!, 'SIGKILL');
  });

  t.ok(await waitFor(async () => (await registryStatus(stateDir, 'images').catch(() => before)).restarts > before.restarts, 60), 'the supervisor restarted it');
  const after = await registryStatus(stateDir, 'images');
  t.not(after.pid, before.pid, 'a new process');
  t.notOk(isAlive(before.pid!), 'the stopped one is gone');
  const kinds = (await eventsSince(stateDir, lastEvent)).filter((e) => e.data?.registry === 'images').map((e) => e.kind);
  t.same(kinds.slice(0, 3), ['registry.unresponsive', 'registry.exited', 'registry.restarted'], 'said why it killed it, then the usual exit and restart');

  const r = await running;
  t.equal(r.exitCode, 0, `the import finished through the restart: ${r.stderr}`);
  t.match(JSON.parse(r.stdout) as object, { status: 'imported', version: '1.1.0' });
});

t.test('the first SIGTERM stops following a hung import at once; the import goes on in the daemon', async (t) => {
  const stateDir = await daemonFor(t);
  const file = await release('1.2.0', 16, 512 * 1024);
  const follower = execa(AIRGAP, ['import', file, '--state-dir', stateDir], { reject: false });
  t.ok(await waitFor(() => pushedBlobs(stateDir) >= 1, 60), 'blobs are being pushed');
  const registry = (await registryStatus(stateDir, 'images')).pid!;
  process.kill(registry, 'SIGSTOP');
  t.teardown(() => {
    if (isAlive(registry)) process.kill(registry, 'SIGCONT');
  });
  follower.kill('SIGTERM');
  const r = await follower;
  t.equal(r.exitCode, 130, 'interrupted');
  t.match(r.stderr, /Stopped following import \d+; it goes on in the daemon \('airgap status' shows it\)/);

  process.kill(registry, 'SIGCONT');
  const state = () => queryState<{ state: string }>(stateDir, 'SELECT state FROM imports ORDER BY id DESC LIMIT 1')[0]!.state;
  t.ok(await waitFor(() => state() === 'imported', 90), 'the daemon finished the import on its own');
});

t.test('airgap import --cancel: a queued import leaves the queue, a running one stops; both say so to their followers', async (t) => {
  const stateDir = await daemonFor(t);
  const running = await release('1.3.0', 16, 512 * 1024);
  const waiting = await release('1.3.1', 2, 50_000);
  const first = execa(AIRGAP, ['import', running, '--state-dir', stateDir], { reject: false });
  t.ok(await waitFor(() => pushedBlobs(stateDir) >= 1, 60), 'blobs are being pushed');
  const registry = (await registryStatus(stateDir, 'images')).pid!;
  process.kill(registry, 'SIGSTOP');
  t.teardown(() => {
    if (isAlive(registry)) process.kill(registry, 'SIGCONT');
  });
  const second = execa(AIRGAP, ['import', waiting, '--state-dir', stateDir], { reject: false });
  const ids = () => queryState<{ id: number; state: string; code: string | null }>(stateDir, 'SELECT id, state, error_code AS code FROM imports ORDER BY id');
  t.ok(await waitFor(() => ids().length === 2), 'the second import is queued');
  const [a, b] = ids();

  const cancelQueued = await execa(AIRGAP, ['import', '--cancel', String(b!.id), '--state-dir', stateDir], { reject: false });
  t.equal(cancelQueued.exitCode, 0, cancelQueued.stderr);
  t.match(cancelQueued.stderr, new RegExp(`Cancelled import ${b!.id} `));
  const secondResult = await second;
  t.equal(secondResult.exitCode, 1);
  t.match(secondResult.stderr, /was cancelled by cli \[AG_IMPORT_CANCELLED\]/);

  const cancelRunning = await execa(AIRGAP, ['import', '--cancel', String(a!.id), '--state-dir', stateDir], { reject: false });
  t.equal(cancelRunning.exitCode, 0, cancelRunning.stderr);
  const firstResult = await first;
  t.equal(firstResult.exitCode, 1);
  t.match(firstResult.stderr, /\[AG_IMPORT_CANCELLED\]/);
  t.same(ids().map((r) => [r.state, r.code]), [['failed', 'AG_IMPORT_CANCELLED'], ['failed', 'AG_IMPORT_CANCELLED']]);

  const again = await execa(AIRGAP, ['import', '--cancel', String(a!.id), '--state-dir', stateDir], { reject: false });
  t.match(again.stderr, new RegExp(`Import ${a!.id} had already ended: failed`), 'cancelling again changes nothing');
  const none = await execa(AIRGAP, ['import', '--cancel', '999', '--state-dir', stateDir], { reject: false });
  t.equal(none.exitCode, 1);
  t.match(none.stderr, /there is no import 999 \[AG_NOT_FOUND\]/);
});
