/**
 * The runtime a format 2 .bin carries (docs/format.md, section 4.9): a Node.js and the
 * portable CLI (dist/portable/airgap.mjs), each gzipped into the payload, so that
 * `sh FILE.bin push ...` works on a Linux machine with nothing installed. The gzip of each
 * is made once per distinct source and kept in a cache folder: a build then only copies
 * it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { BundleError } from '../kit/errors.js';
import { writeFileAtomic } from '../kit/fs.js';

/** Where the runtime comes from. */
export interface RuntimeSources {
  /** A self-contained Node.js executable (a nodejs.org build, not one that needs libnode.so) for `platform`. */
  node: string;
  /** Its release, e.g. `v20.20.2`. */
  nodeVersion: string;
  platform: 'linux-x64' | 'linux-arm64';
  /** The portable CLI: one ES module (`npm run build` makes dist/portable/airgap.mjs). */
  cli: string;
  /** Where gzipped runtimes are kept between builds (default: $XDG_CACHE_HOME/airgap/runtime). */
  cacheDir?: string;
}

/** One runtime entry, gzipped: the cached file, its size and sha256 (hex). */
export interface PackedRuntimeFile {
  file: string;
  size: number;
  sha256: string;
}

/** Folder of the gzip cache: `$XDG_CACHE_HOME/airgap/runtime`, else `~/.cache/airgap/runtime`. */
export function defaultRuntimeCache(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'airgap', 'runtime');
}

/** dist/portable/airgap.mjs of this checkout or release, found from this module's folder; undefined when not built. */
export function portableCliPath(): string | undefined {
  let dir = import.meta.dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'dist', 'portable', 'airgap.mjs');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/**
 * The runtime of this machine: the Node.js running this build and the portable CLI beside
 * it. `node` overrides the executable (`--runtime-node`; its version is asked of it).
 * Throws BundleError AG_RUNTIME when there is none to carry: not Linux x64/arm64, a
 * Node.js that needs libnode.so (a distribution build), or no dist/portable/airgap.mjs.
 */
export async function localRuntime(node?: string): Promise<RuntimeSources> {
  const hint = 'pass --runtime-node with a Node.js from nodejs.org for Linux, or --no-runtime for a .bin without one';
  const arch = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : undefined;
  if (process.platform !== 'linux' || !arch) {
    throw new BundleError('AG_RUNTIME', `the runtime a .bin carries is a Node.js for Linux; this is ${process.platform}-${process.arch}`, { hint });
  }
  const executable = node ?? process.execPath;
  const probe = await execa(executable, ['-p', 'process.version + " " + process.platform + "-" + process.arch'], { reject: false, timeout: 30_000 });
  const [version, platform] = String(probe.stdout).trim().split(' ');
  if (probe.exitCode !== 0 || !version || !/^v\d+\.\d+\.\d+$/.test(version) || (platform !== 'linux-x64' && platform !== 'linux-arm64')) {
    throw new BundleError('AG_RUNTIME', `${executable} is not a Node.js for Linux that runs here`, { hint });
  }
  const libs = await execa('ldd', [executable], { reject: false, timeout: 30_000 });
  if (/libnode\.so/.test(String(libs.stdout))) {
    throw new BundleError('AG_RUNTIME', `${executable} needs libnode.so (a distribution's build); a .bin must carry a self-contained Node.js`, { hint });
  }
  const cli = portableCliPath();
  if (!cli) throw new BundleError('AG_RUNTIME', 'the portable CLI (dist/portable/airgap.mjs) is not built', { hint: 'run `npm run build` (or `make build`), or pass --no-runtime' });
  return { node: executable, nodeVersion: version, platform, cli };
}

/**
 * Gzips `source` into the cache (once per content: the cache file is named by the
 * source's sha256) and returns the cached file with its size and sha256. gzip level 9,
 * no name or time in its header: the same source gives the same bytes.
 */
export async function packRuntimeFile(source: string, cacheDir: string): Promise<PackedRuntimeFile> {
  const { sha256Hex } = await hashStream(createReadStream(source, { highWaterMark: 1024 * 1024 }));
  const file = join(cacheDir, `${sha256Hex}.gz`);
  if (!(await stat(file).then((s) => s.isFile(), () => false))) {
    await mkdir(cacheDir, { recursive: true });
    await writeFileAtomic(file, createReadStream(source).pipe(createGzip({ level: 9 })), 0o644);
  }
  const packed = await hashStream(createReadStream(file, { highWaterMark: 1024 * 1024 }));
  return { file, size: packed.size, sha256: packed.sha256Hex };
}

async function hashStream(stream: AsyncIterable<Buffer>): Promise<{ sha256Hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256Hex: hash.digest('hex'), size };
}
