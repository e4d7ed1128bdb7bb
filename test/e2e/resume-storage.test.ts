/**
 * kill -9 of a daemon that writes blobs straight into its registries' storage (ADR 0008),
 * after a commit and before the stage ends: the next start resumes the import, the blobs
 * the journal names are in place and are not written again, the temp files of the blobs it
 * was writing are gone, and the release is whole (a second import finds it unchanged).
 */
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import t from 'tap';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { blobPath } from '../../src/format/layout.js';
import { openPayload, readSmallEntry } from '../../src/format/reader.js';
import { writeSyntheticLayout } from '../helpers/fixtures.js';
import { AIRGAP, startDaemon, waitFor, queryState } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-resume-storage-test-');
const keys = await generateSigningKeys(join(work, 'keys'));
// 600 MB in 2 MB layers: the first commit comes after 256 MB (or 2 s), well before the end.
const LAYERS = 300;
const LAYER_BYTES = 2 * 1024 * 1024;
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'big', layers: Array.from({ length: LAYERS }, () => randomBytes(LAYER_BYTES)) }]);
await writeFile(join(work, 'bundle.yaml'), stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'resume', version: '1.0.0', images: [{ source: 'oci:./images:big', target: 'resume/big:1.0.0' }] }));
await mkdir(join(work, 'out'));
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: join(work, 'out'), privateKeyPath: keys.privateKeyPath })).path;

let daemon = await startDaemon(t);
const stateDir = daemon.stateDir;
await copyFile(keys.publicKeyPath, join(stateDir, 'trusted-keys', 'build.pub'));

const query = <T>(sql: string, ...params: unknown[]): T[] => queryState<T>(stateDir, sql, ...params);

t.test('kill -9 between two commits: the import resumes and writes only what was not committed', async (t) => {
  const importing = execa(AIRGAP, ['import', bin, '--json', '--state-dir', stateDir], { reject: false });
  const journalledOfRunning = () => query<{ n: number }>("SELECT COUNT(*) AS n FROM import_blobs ib JOIN imports i ON i.id = ib.import_id WHERE i.state = 'running'")[0]!.n;
  t.ok(await waitFor(() => journalledOfRunning() >= 1, 60), 'a commit has journalled blobs');
  daemon.child.kill('SIGKILL');
  await daemon.child;
  const [running] = query<{ id: number }>("SELECT id FROM imports WHERE state = 'running'");
  if (!running) throw new Error('the import ended before the kill: make the release bigger');
  const journalled = query<{ n: number; bytes: number }>("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM import_blobs WHERE import_id = ? AND action = 'pushed'", running.id)[0]!;
  t.ok(journalled.n >= 1 && journalled.n < LAYERS, `${journalled.n} of ${LAYERS + 1} blobs were journalled before the kill`);

  daemon = await startDaemon(t, { stateDir, ports: daemon.ports });
  const r = await importing;
  t.equal(r.exitCode, 0, String(r.stderr));
  t.match(String(r.stderr), /The daemon went away; waiting for it to come back and resume the import/);
  const result = JSON.parse(String(r.stdout)) as { status: string; resumed: boolean; bytesPushed: number; blobsSkipped: number; blobsPushed: number };
  t.match(result, { status: 'imported', resumed: true });
  t.ok(result.blobsSkipped >= journalled.n, `the ${journalled.n} journalled blobs were skipped (${result.blobsSkipped})`);
  // Every blob of the release once: config and layers, as the .bin's manifest lists them.
  const opened = await openPayload(bin);
  const manifestEntry = opened.byPath.get(blobPath(opened.toc.images[0]!.digest))!;
  const manifest = JSON.parse((await readSmallEntry(opened.handle, manifestEntry, 1024 * 1024)).toString()) as { config: { size: number }; layers: Array<{ size: number }> };
  await opened.close();
  const blobBytes = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
  t.equal(result.bytesPushed + journalled.bytes, blobBytes, `after the restart ${result.bytesPushed} bytes, before ${journalled.bytes}: every blob written once`);
  const incoming = await readdir(join(stateDir, 'registries', 'images', 'incoming')).catch(() => []);
  t.same(incoming, [], 'no temp file of the killed daemon is left');

  const again = await execa(AIRGAP, ['import', bin, '--json', '--state-dir', stateDir], { reject: false });
  t.equal(again.exitCode, 0, String(again.stderr));
  t.match(JSON.parse(String(again.stdout)) as object, { status: 'unchanged', bytesPushed: 0 }, 'the resumed release is whole: every tag and blob in place');
});
