/**
 * The many-files suite of `npm run bench` (issue 13, item 4): what large entry counts cost.
 *
 * 1. A signed bundle of N small files (100,000 by default; 0–2 KiB each, random bytes in
 *    1,000 folders): build seconds and the builder's peak RSS, then the import into a fresh
 *    appliance: seconds, the daemon's peak RSS during the import (VmHWM, reset before it
 *    through /proc/PID/clear_refs) and the slowest answer of the admin API, asked every
 *    100 ms while the import runs (a blocked event loop shows here). Then a re-import.
 * 2. A hostile unsigned file of 1,000,000 empty entries (about 512 MB): how long the daemon
 *    takes to refuse it and what it costs in memory.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { generateSigningKeys } from '../src/format/keys.js';
import { encodeFileHeader, endOfArchive, paddingFor } from '../src/format/tar.js';
import { renderHeader } from '../src/format/header.js';
import { serializeToc } from '../src/format/toc.js';
import { HEADER_SIZE, OCI_INDEX_PATH, OCI_LAYOUT_CONTENT, OCI_LAYOUT_PATH, TOC_PATH } from '../src/format/layout.js';
import { stateLayout } from '../src/appliance/config/state-layout.js';
import { AIRGAP, MB, startAppliance, timed, vmHwm, work } from './common.js';

/** Resets the peak RSS of `pid` (Linux: writing 5 to clear_refs). */
async function resetHwm(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** Milliseconds one GET of `/v1/status` on the admin socket takes. */
function adminLatency(stateDir: string): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: stateLayout(stateDir).adminSocket, path: '/v1/status' }, (res) => {
      res.resume();
      res.on('end', () => resolve(Number(process.hrtime.bigint() - start) / 1e6));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Runs `fn` while asking the admin API every 100 ms; returns its result and the slowest answer. */
async function withLatencyProbe<T>(stateDir: string, fn: () => Promise<T>): Promise<{ value: T; maxLatencyMs: number }> {
  let running = true;
  let max = 0;
  const probe = (async () => {
    while (running) {
      max = Math.max(max, await adminLatency(stateDir).catch(() => 0));
      await sleep(100);
    }
  })();
  try {
    return { value: await fn(), maxLatencyMs: Math.round(max) };
  } finally {
    running = false;
    await probe;
  }
}

/** Runs the CLI with `args`, sampling its peak RSS; resolves exit code, output and the peak. */
async function runSampled(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string; peakRss: number }> {
  const child = execa(AIRGAP, args, { reject: false });
  let peak = 0;
  const sampler = (async () => {
    while (child.exitCode === null && child.pid) {
      peak = Math.max(peak, (await vmHwm(child.pid)) ?? 0);
      await sleep(50);
    }
  })();
  const r = await child;
  await sampler;
  return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr), peakRss: peak };
}

/** Writes N files of 0–2 KiB in 1,000 folders; returns their total bytes. */
async function makeFiles(dir: string, count: number): Promise<number> {
  let total = 0;
  const pool = randomBytes(4096);
  for (let d = 0; d < Math.min(1000, count); d++) await mkdir(join(dir, `d${d}`), { recursive: true });
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < count) {
        const i = next++;
        const size = (i * 7919) % 2048;
        const offset = (i * 31) % 2048;
        total += size;
        await writeFile(join(dir, `d${i % 1000}`, `f${i}.txt`), pool.subarray(offset, offset + size));
      }
    }),
  );
  return total;
}

/**
 * Writes an unsigned .bin of `count` empty entries after a small TOC that lists none of
 * them, streaming (the file is about count × 512 bytes).
 */
async function writeHostileBin(file: string, count: number): Promise<number> {
  const created = '2026-01-01T00:00:00Z';
  const mtime = Date.parse(created) / 1000;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const layout = Buffer.from(OCI_LAYOUT_CONTENT);
  const index = Buffer.from('{"schemaVersion":2,"manifests":[]}');
  const toc = serializeToc({
    apiVersion: 'airgap/v1',
    kind: 'TableOfContents',
    name: 'hostile',
    version: '6.6.6',
    created,
    images: [],
    charts: [],
    packs: [],
    files: [],
    entries: [
      { path: OCI_LAYOUT_PATH, size: layout.length, sha256: sha(layout) },
      { path: OCI_INDEX_PATH, size: index.length, sha256: sha(index) },
    ],
  });
  const entry = (path: string, data: Buffer) => [encodeFileHeader({ path, size: data.length, mode: 0o644, mtime }), data, Buffer.alloc(paddingFor(data.length))];
  const tocParts = entry(TOC_PATH, toc);
  const head = Buffer.concat([...tocParts, ...entry(OCI_LAYOUT_PATH, layout), ...entry(OCI_INDEX_PATH, index)]);
  const hash = createHash('sha256').update(head);
  const fh = await open(file, 'w', 0o644);
  try {
    let position = HEADER_SIZE;
    await fh.write(head, 0, head.length, position);
    position += head.length;
    const batch = 4096;
    for (let i = 0; i < count; i += batch) {
      const blocks = [];
      for (let j = i; j < Math.min(count, i + batch); j++) blocks.push(encodeFileHeader({ path: `junk/${j}`, size: 0, mode: 0o644, mtime }));
      const chunk = Buffer.concat(blocks);
      hash.update(chunk);
      await fh.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    }
    const end = endOfArchive();
    hash.update(end);
    await fh.write(end, 0, end.length, position);
    position += end.length;
    const header = renderHeader({
      format: '1',
      name: 'hostile',
      version: '6.6.6',
      created,
      payloadOffset: HEADER_SIZE,
      payloadSize: position - HEADER_SIZE,
      payloadSha256: hash.digest('hex'),
      tocOffset: HEADER_SIZE + tocParts[0]!.length,
      tocSize: toc.length,
      tocSha256: sha(toc),
      keyId: '',
      signature: '',
    });
    await fh.write(header, 0, header.length, 0);
    return position;
  } finally {
    await fh.close();
  }
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

export interface ManyFilesResult {
  parameters: { files: number; fileMB: number; hostileEntries: number };
  build: { seconds: number; peakRssMB: number; binMB: number };
  import: { seconds: number; filesPerSecond: number; daemonPeakRssMB: number; daemonRssBeforeMB: number; apiMaxLatencyMs: number; status: string };
  reimport: { seconds: number; daemonPeakRssMB: number; apiMaxLatencyMs: number; status: string };
  hostile: { seconds: number; code: string; daemonPeakRssMB: number; apiMaxLatencyMs: number };
}

/** Runs the suite in `work/many`; see the file comment. */
export async function manyFilesBench(options: { files: number; hostileEntries?: number }): Promise<ManyFilesResult> {
  const hostileEntries = options.hostileEntries ?? 1_000_000;
  const dir = join(work, 'many');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  console.error(`bench: ${options.files} files; a hostile unsigned file of ${hostileEntries} empty entries`);
  const bytes = await makeFiles(join(dir, 'files'), options.files);
  const keys = await generateSigningKeys(join(dir, 'keys'));
  const spec = join(dir, 'bundle.yaml');
  await writeFile(spec, stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'many', version: '1.0.0', files: [{ source: './files/', target: 'data/' }] }));
  const out = join(dir, 'out');
  const build = await timed(() => runSampled(['build', spec, '--out', out, '--key', keys.privateKeyPath, '--json']));
  if (build.value.exitCode !== 0) throw new Error(`build failed: ${build.value.stderr}`);
  const bin = (JSON.parse(build.value.stdout) as { path: string }).path;
  const binBytes = (await stat(bin)).size;

  const box = await startAppliance('many', keys.publicKeyPath);
  try {
    const pid = Number((await readFile(join(box.stateDir, 'daemon.pid'), 'utf8')).trim());
    const importOnce = async () => {
      await resetHwm(pid);
      const rss = (await vmHwm(pid)) ?? 0;
      const r = await timed(() => withLatencyProbe(box.stateDir, () => execa(AIRGAP, ['import', bin, '--json', '--state-dir', box.stateDir], { reject: false })));
      const doc = JSON.parse(String(r.value.value.stdout) || '{}') as { status?: string; code?: string };
      return { seconds: r.seconds, rssBefore: rss, peak: (await vmHwm(pid)) ?? 0, latency: r.value.maxLatencyMs, status: doc.status ?? doc.code ?? `exit ${r.value.value.exitCode}` };
    };
    const first = await importOnce();
    const again = await importOnce();

    const hostileBin = join(dir, 'hostile.bin');
    await writeHostileBin(hostileBin, hostileEntries);
    await resetHwm(pid);
    const hostile = await timed(() => withLatencyProbe(box.stateDir, () => execa(AIRGAP, ['import', hostileBin, '--json', '--state-dir', box.stateDir], { reject: false })));
    // A refusal is printed on stderr, with its code in brackets, even with --json.
    const hostileCode = /\[(AG_[A-Z_]+)\]/.exec(String(hostile.value.value.stderr))?.[1];
    const hostilePeak = (await vmHwm(pid)) ?? 0;

    const result: ManyFilesResult = {
      parameters: { files: options.files, fileMB: round(bytes / MB, 1), hostileEntries },
      build: { seconds: round(build.seconds), peakRssMB: round(build.value.peakRss / MB, 1), binMB: round(binBytes / MB, 1) },
      import: { seconds: round(first.seconds), filesPerSecond: Math.round(options.files / first.seconds), daemonPeakRssMB: round(first.peak / MB, 1), daemonRssBeforeMB: round(first.rssBefore / MB, 1), apiMaxLatencyMs: first.latency, status: first.status },
      reimport: { seconds: round(again.seconds), daemonPeakRssMB: round(again.peak / MB, 1), apiMaxLatencyMs: again.latency, status: again.status },
      hostile: { seconds: round(hostile.seconds), code: hostileCode ?? `exit ${hostile.value.value.exitCode}`, daemonPeakRssMB: round(hostilePeak / MB, 1), apiMaxLatencyMs: hostile.value.maxLatencyMs },
    };
    console.log(`${options.files} files (${result.parameters.fileMB} MB): build ${result.build.seconds} s (peak RSS ${result.build.peakRssMB} MB, .bin ${result.build.binMB} MB)`);
    console.log(`  import ${result.import.seconds} s (${result.import.filesPerSecond} files/s, ${result.import.status}); daemon RSS ${result.import.daemonRssBeforeMB} MB before, peak ${result.import.daemonPeakRssMB} MB; slowest API answer ${result.import.apiMaxLatencyMs} ms`);
    console.log(`  re-import ${result.reimport.seconds} s (${result.reimport.status}); peak RSS ${result.reimport.daemonPeakRssMB} MB; slowest API answer ${result.reimport.apiMaxLatencyMs} ms`);
    console.log(`hostile unsigned file of ${hostileEntries} empty entries: refused in ${result.hostile.seconds} s with ${result.hostile.code}; daemon peak RSS ${result.hostile.daemonPeakRssMB} MB; slowest API answer ${result.hostile.apiMaxLatencyMs} ms`);
    return result;
  } finally {
    await box.stop();
  }
}
