/**
 * build/runtime: what a format 2 .bin may carry, and the gzip cache that must never hand
 * the builder bytes other than the source's (they are signed).
 */
import t from 'tap';
import { chmod, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { localRuntime, packRuntimeFile } from '../../src/build/runtime.js';
import { tempDir } from '../helpers/temp.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('the cache gzips a source once; a cached file that does not unpack to the source is made again', async (t) => {
  const dir = await tempDir(t, 'airgap-runtime-test-');
  const cache = join(dir, 'cache');
  const source = join(dir, 'cli.mjs');
  const bytes = Buffer.from('console.log("the portable CLI");\n'.repeat(1000));
  await writeFile(source, bytes);
  const first = await packRuntimeFile(source, cache);
  t.same(gunzipSync(await readFile(first.file)), bytes, 'the gzip unpacks to the source');
  t.equal(first.sha256, sha(await readFile(first.file)));
  t.same(await packRuntimeFile(source, cache), first, 'the same file, size and sha256 from the cache');

  await writeFile(first.file, gzipSync(Buffer.from('#!/bin/sh\necho planted\n')));
  const again = await packRuntimeFile(source, cache);
  t.same(again, first, 'a planted file is not used: the gzip is made again');
  t.same(gunzipSync(await readFile(again.file)), bytes);
  await writeFile(first.file, 'not gzip at all');
  t.same(await packRuntimeFile(source, cache), first, 'nor is a file that is not gzip');
  t.same((await readdir(cache)).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');

  // Earlier builds' gzips: only the RUNTIME_CACHE_KEEP used last stay.
  const old = Array.from({ length: 6 }, (_, i) => join(cache, `${String(i).repeat(64)}.gz`));
  for (const [i, file] of old.entries()) {
    await writeFile(file, gzipSync(Buffer.from(`old ${i}`)));
    await utimes(file, new Date(Date.UTC(2026, 0, 1 + i)), new Date(Date.UTC(2026, 0, 1 + i)));
  }
  await writeFile(join(cache, 'notes.txt'), 'not a cache file');
  t.same(await packRuntimeFile(source, cache), first, 'a use of the cache');
  t.same((await readdir(cache)).sort(), [...[5, 4, 3].map((i) => `${String(i).repeat(64)}.gz`), basename(first.file), 'notes.txt'].sort(), 'the file used and the newest others, up to RUNTIME_CACHE_KEEP; other files untouched');
});

t.test('only a self-contained Node.js for Linux is carried', async (t) => {
  const dir = await tempDir(t, 'airgap-runtime-node-');
  const script = join(dir, 'node');
  await writeFile(script, '#!/bin/sh\nexec node "$@"\n');
  await chmod(script, 0o755);
  await t.rejects(localRuntime(script), { code: 'AG_RUNTIME', message: /is not an executable \(ELF\) file/ }, 'a script that runs node is not a Node.js to carry');
  await t.rejects(localRuntime(join(dir, 'missing')), { code: 'AG_RUNTIME' });
  await t.rejects(localRuntime('/bin/true'), { code: 'AG_RUNTIME', message: /is not a Node.js for Linux/ }, 'an ELF file that is not Node.js');
  const here = await localRuntime();
  t.equal(here.nodeVersion, process.version);
  t.equal(here.platform, `linux-${process.arch}`);
});
