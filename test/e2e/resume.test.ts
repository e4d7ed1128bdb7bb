/**
 * Imports under stress, against the real daemon and registries: kill -9 of the daemon in
 * the middle of an import (it resumes on restart without pushing finished blobs again,
 * and the CLI that followed it reconnects), the queue (one import at a time, the second
 * says it waits), the inbox (a file copied in slowly is taken only once complete and
 * closed; a bad one goes to failed/ with the reason), and the live progress bar on a TTY.
 */
import t from 'tap';
import { copyFile, mkdir, readdir, readFile, stat, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { stringify } from 'yaml';
import * as pty from 'node-pty';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { openPayload, readSmallEntry } from '../../src/format/reader.js';
import { blobPath } from '../../src/format/layout.js';
import { writeSyntheticLayout, makeFiles } from '../helpers/fixtures.js';
import { AIRGAP, startDaemon, waitFor, type TestDaemon, queryState } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-resume-test-');
const keys = await generateSigningKeys(join(work, 'keys'));
await makeFiles(join(work, 'manifests'));

/** Builds a signed release whose image has `layers` layers of `layerBytes` random bytes. */
async function release(version: string, layers: number, layerBytes: number): Promise<string> {
  const ref = `img-${version}`;
  await writeSyntheticLayout(join(work, 'images'), [{ ref, layers: Array.from({ length: layers }, () => randomBytes(layerBytes)) }]);
  const spec = join(work, `bundle-${version}.yaml`);
  await writeFile(spec, stringify({
    apiVersion: 'airgap/v1', kind: 'Bundle', name: 'stress', version,
    images: [{ source: `oci:./images:${ref}`, target: `stress/img:${version}` }],
    files: [{ source: './manifests/', target: 'manifests/' }],
  }));
  const out = join(work, `out-${version}`);
  await mkdir(out, { recursive: true });
  return (await buildBundle({ specPath: spec, out, privateKeyPath: keys.privateKeyPath })).path;
}

// Big enough that the import is still running while a second CLI starts, queues and says so
// (about 3 s here). The daemon uploads blobs through the registries' API here (as before ADR
// 0008: each blob journalled as the registry takes it); resume-storage.test.ts kills one that
// writes the registries' storage.
const HTTP_BLOBS = { AIRGAP_IMPORT_BLOBS: 'http' };
const BIG_LAYERS = 160;
const BIG_LAYER_BYTES = 2 * 1024 * 1024;
const big = await release('1.0.0', BIG_LAYERS, BIG_LAYER_BYTES);
const small = await release('1.1.0', 2, 100_000);
let daemon: TestDaemon = await startDaemon(t, { env: HTTP_BLOBS });
/** The file's test: a daemon started inside a subtest serves the later ones too, so it stops with this. */
const top = t;
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const stateDir = daemon.stateDir;
const query = <T>(sql: string, ...params: unknown[]): T[] => queryState<T>(stateDir, sql, ...params);

t.test('kill -9 in the middle of an import: the next start resumes it, nothing finished is pushed twice; a second import waits in the queue', async (t) => {
  const first = execa(AIRGAP, ['import', big, '--json', '--state-dir', stateDir], { reject: false });
  t.ok(await waitFor(() => query<{ n: number }>("SELECT COUNT(*) AS n FROM import_blobs ib JOIN imports i ON i.id = ib.import_id WHERE i.state = 'running'")[0]!.n >= 1, 30), 'blobs are being pushed');
  const second = execa(AIRGAP, ['import', small, '--json', '--state-dir', stateDir], { reject: false });
  let secondSays = '';
  second.stderr?.on('data', (chunk: Buffer) => (secondSays += chunk.toString()));
  t.ok(await waitFor(() => query("SELECT id FROM imports WHERE state = 'queued'").length === 1 && secondSays.includes('Waiting in the queue'), 30), 'the second import is queued and says so');
  const [running] = query<{ id: number; state: string }>("SELECT id, state FROM imports WHERE state = 'running'");
  t.ok(running, 'the first one is still running when the daemon dies');

  daemon.child.kill('SIGKILL');
  await daemon.child;
  const journalled = query<{ n: number; bytes: number }>("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM import_blobs WHERE import_id = ? AND action = 'pushed'", running!.id)[0]!;
  t.ok(journalled.n >= 1, `${journalled.n} blobs were journalled before the kill`);

  daemon = await startDaemon(top, { stateDir, ports: daemon.ports, env: HTTP_BLOBS });
  const a = await first;
  const b = await second;
  t.equal(a.exitCode, 0, String(a.stderr));
  t.equal(b.exitCode, 0, String(b.stderr));
  t.match(String(a.stderr), /The daemon went away; waiting for it to come back and resume the import/);
  t.match(String(b.stderr), /Waiting in the queue: 1 import\(s\) ahead of this one/);
  const resumed = JSON.parse(String(a.stdout)) as { status: string; resumed: boolean; bytesPushed: number; blobsSkipped: number };
  t.match(resumed, { status: 'imported', resumed: true });
  // Every blob of the release once (config and layers, as the .bin's manifest lists them):
  // the 160-layer config alone is about 11 KB, more than a fixed allowance would cover.
  const opened = await openPayload(big);
  const imageDigest = opened.toc.images[0]!.digest;
  const manifest = JSON.parse((await readSmallEntry(opened.handle, opened.byPath.get(blobPath(imageDigest))!, 1024 * 1024)).toString()) as { config: { size: number }; layers: Array<{ size: number }> };
  await opened.close();
  const blobBytes = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
  t.ok(resumed.blobsSkipped >= journalled.n, `the ${journalled.n} journalled blobs were skipped (${resumed.blobsSkipped})`);
  t.ok(resumed.bytesPushed + journalled.bytes <= blobBytes, `after the restart ${resumed.bytesPushed} bytes, before ${journalled.bytes}: no finished blob pushed twice`);
  const rows = query<{ version: string; current: number }>('SELECT version, current FROM releases ORDER BY version');
  t.same(rows, [{ version: '1.0.0', current: 0 }, { version: '1.1.0', current: 1 }], 'both releases recorded, in queue order');
  const events = query<{ kind: string }>("SELECT kind FROM events WHERE kind = 'import.resumed'");
  t.equal(events.length, 1, 'the resume is in the event log');
});

t.test('the inbox: a slowly copied file is taken once complete and closed; a bad one lands in failed/ with the reason', async (t) => {
  const inbox = join(stateDir, 'inbox');
  const next = await release('1.2.0', 2, 50_000);
  const bytes = await readFile(next);
  const current = async () => (JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string }).current;
  const before = await current();
  const dest = join(inbox, 'airgap-v1.2.0.bin');
  const fh = await open(dest, 'w');
  await fh.write(bytes.subarray(0, 20_000));
  // Bad files dropped beside it are the clock. The inbox takes a file whose size held over
  // two scans: when the first bad one is taken, the open file has held as long; the second
  // is dropped after that, so two more whole scans passed it by before it is taken in turn.
  const bad = join(work, 'bad.bin');
  await copyFile(next, bad);
  await truncate(bad, 30_000);
  for (const name of ['airgap-bad.bin', 'airgap-bad-again.bin']) {
    await copyFile(bad, join(inbox, name));
    t.ok(await waitFor(async () => (await readdir(join(inbox, 'failed'))).includes(`${name}.reason.txt`), 30), `${name} moved to failed/`);
    t.match(await readFile(join(inbox, 'failed', `${name}.reason.txt`), 'utf8'), /AG_TRUNCATED/);
  }
  t.equal(await current(), before, 'the failed files changed nothing');
  t.ok(await stat(dest).then(() => true, () => false), 'still in the inbox while the copy is open');
  const ofDest = "SELECT state, version FROM imports WHERE source = 'inbox' AND file LIKE '%-airgap-v1.2.0.bin'";
  t.equal(query(ofDest).length, 0, 'not imported half-written');
  await fh.write(bytes.subarray(20_000));
  await fh.close();
  t.ok(await waitFor(async () => (await readdir(join(inbox, 'processed'))).includes('airgap-v1.2.0.bin'), 30), 'moved to processed/');
  t.same(query(ofDest), [{ state: 'imported', version: '1.2.0' }]);
  t.equal(await current(), '1.2.0');
});

t.test('on a terminal: stage lines and a live progress bar (node-pty)', async (t) => {
  const next = await release('1.3.0', 4, 400_000);
  const term = pty.spawn(AIRGAP, ['import', next, '--state-dir', stateDir], { name: 'xterm', cols: 120, rows: 30, cwd: work, env: { ...process.env } });
  let output = '';
  term.onData((d) => (output += d));
  const code = await new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  t.equal(code, 0, output);
  t.match(output, /Setting up Images/);
  t.match(output, /\r\x1b\[K\[[#.]{24}\] +\d+% {2}[\d.]+ [kMG]?B \/ [\d.]+ [kMG]?B {2}[\d.]+ [kMG]?B\/s/, 'a live bar redrawn in place: bytes, rate');
  t.match(output, /\[#{24}\] +100%/, 'it reaches 100%');
  t.match(output, /Setup Completed: stress 1\.3\.0 upgraded from 1\.2\.0/);
});
