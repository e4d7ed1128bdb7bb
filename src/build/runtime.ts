/**
 * The runtime a format 2 .bin carries (docs/format.md, section 2.8): a Node.js and the
 * portable CLI (dist/portable/airgap.mjs), each gzipped into the payload, so that
 * `sh FILE.bin push ...` works on a Linux machine with nothing installed. The gzip of each
 * is made once per distinct source and kept in a cache folder: a build then only copies
 * it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readdir, rm, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { addAbortSignal } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { BundleError } from '../kit/errors.js';
import { writeFileAtomic } from '../kit/fs.js';
import { hexOfDigest } from '../kit/digest.js';
import { hashFile } from './artifacts.js';

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

/** The oldest Node.js the portable CLI runs on (`import.meta.dirname`, the project's engines). */
export const MIN_NODE = 'v20.11.0';

/** Libraries every glibc Linux has: the only ones a carried Node.js may need (nodejs.org's builds need no others). */
const BASE_LIBRARIES = /^(?:linux-vdso|linux-gate|ld-linux[-\w.]*|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so[.\d]*$/;

function compareVersions(a: string, b: string): number {
  const pa = a.slice(1).split('.').map(Number);
  const pb = b.slice(1).split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i]! !== pb[i]!) return pa[i]! - pb[i]!;
  return 0;
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
 * Throws BundleError AG_RUNTIME when there is none to carry: not Linux x64/arm64, not an
 * ELF executable, a Node.js older than MIN_NODE, one that links a library a bare Linux may
 * lack (a distribution's build: libnode.so, a system OpenSSL, ICU or libuv), or no
 * dist/portable/airgap.mjs.
 */
export async function localRuntime(node?: string): Promise<RuntimeSources> {
  const hint = 'pass --runtime-node with a Node.js from nodejs.org for Linux, or --no-runtime for a .bin without one';
  const arch = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : undefined;
  if (process.platform !== 'linux' || !arch) {
    throw new BundleError('AG_RUNTIME', `the runtime a .bin carries is a Node.js for Linux; this is ${process.platform}-${process.arch}`, { hint });
  }
  const executable = node ?? process.execPath;
  const magic = Buffer.alloc(4);
  const fh = await open(executable, 'r').catch(() => undefined);
  if (fh) await fh.read(magic, 0, 4, 0).finally(() => fh.close());
  if (!magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new BundleError('AG_RUNTIME', `${executable} is not an executable (ELF) file`, { hint });
  // Loaded here, not at the top: execa is a few hundred modules, and every CLI start would pay for them.
  const { execa } = await import('execa');
  const probe = await execa(executable, ['-p', 'process.version + " " + process.platform + "-" + process.arch'], { reject: false, timeout: 30_000 });
  const [version, platform] = String(probe.stdout).trim().split(' ');
  if (probe.exitCode !== 0 || !version || !/^v\d+\.\d+\.\d+$/.test(version) || (platform !== 'linux-x64' && platform !== 'linux-arm64')) {
    throw new BundleError('AG_RUNTIME', `${executable} is not a Node.js for Linux that runs here`, { hint });
  }
  if (compareVersions(version, MIN_NODE) < 0) throw new BundleError('AG_RUNTIME', `${executable} is Node.js ${version}; the portable CLI needs ${MIN_NODE} or newer`, { hint });
  const libs = await execa('ldd', [executable], { reject: false, timeout: 30_000 });
  if (libs.exitCode !== 0) throw new BundleError('AG_RUNTIME', `cannot list the libraries ${executable} needs (ldd: ${String(libs.stderr).trim() || libs.exitCode})`, { hint });
  const needed = [...String(libs.stdout).matchAll(/^\s*(\S+\.so[.\d]*)\s/gm)].map((m) => m[1]!.replace(/^.*\//, ''));
  const foreign = needed.filter((lib) => !BASE_LIBRARIES.test(lib));
  if (foreign.length) {
    throw new BundleError('AG_RUNTIME', `${executable} needs ${foreign.join(', ')} (a distribution's build); a .bin must carry a self-contained Node.js`, { hint });
  }
  const cli = portableCliPath();
  if (!cli) throw new BundleError('AG_RUNTIME', 'the portable CLI (dist/portable/airgap.mjs) is not built', { hint: 'run `npm run build` (or `make build`), or pass --no-runtime' });
  return { node: executable, nodeVersion: version, platform, cli };
}

/**
 * Gzips `source` into the cache (once per content: the cache file is named by the
 * source's sha256) and returns the cached file with its size and sha256. gzip level 9,
 * no name or time in its header: the same source gives the same bytes. A cached file is
 * used only when it unpacks to exactly the source (its sha256 goes into the signed TOC:
 * a file planted in the cache must not be signed); otherwise it is made again. The cache
 * keeps the RUNTIME_CACHE_KEEP files used last (a use touches the file); older ones go.
 */
export async function packRuntimeFile(source: string, cacheDir: string, signal?: AbortSignal): Promise<PackedRuntimeFile> {
  const sha256Hex = hexOfDigest((await hashFile(source)).digest);
  const file = join(cacheDir, `${sha256Hex}.gz`);
  let cached = await readCached(file);
  if (cached?.unpackedSha256 !== sha256Hex) {
    await mkdir(cacheDir, { recursive: true });
    const gzip = createGzip({ level: 9 });
    const read = createReadStream(source, { highWaterMark: 1024 * 1024 }).on('error', (err) => gzip.destroy(err));
    if (signal) addAbortSignal(signal, gzip);
    await writeFileAtomic(file, read.pipe(gzip), 0o644);
    cached = await readCached(file);
    if (cached?.unpackedSha256 !== sha256Hex) throw new BundleError('AG_RUNTIME', `${file} does not unpack to ${source} (it changed while it was made)`);
  }
  await utimes(file, new Date(), new Date()).catch(() => {});
  await pruneCache(cacheDir, file);
  // The builder checks these bytes against this sha256 again as it writes them.
  return { file, size: cached.size, sha256: cached.sha256 };
}

/** How many gzips the runtime cache keeps: a Node.js and a CLI, each of this and one earlier build. */
export const RUNTIME_CACHE_KEEP = 4;

/**
 * Removes the cache's gzips (`<sha256>.gz`) beyond the RUNTIME_CACHE_KEEP used last,
 * never `using`. Best effort: a file that cannot be read or removed stays.
 */
async function pruneCache(cacheDir: string, using: string): Promise<void> {
  const names = (await readdir(cacheDir).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}\.gz$/.test(n));
  if (names.length <= RUNTIME_CACHE_KEEP) return;
  const files = await Promise.all(names.map(async (n) => ({ path: join(cacheDir, n), used: (await stat(join(cacheDir, n)).catch(() => undefined))?.mtimeMs ?? Infinity })));
  files.sort((a, b) => b.used - a.used);
  for (const f of files.slice(RUNTIME_CACHE_KEEP)) if (f.path !== using) await rm(f.path, { force: true }).catch(() => {});
}

/**
 * One reading of a cached gzip: its size and sha256, and the sha256 of what it unpacks
 * to, from the same bytes. Undefined when it is missing or not gzip.
 */
async function readCached(file: string): Promise<{ size: number; sha256: string; unpackedSha256: string } | undefined> {
  const packed = createHash('sha256');
  const unpacked = createHash('sha256');
  let size = 0;
  let unpackedSize = 0;
  let last = Buffer.alloc(0);
  const gunzip = createGunzip();
  const unpacking = (async () => {
    for await (const chunk of gunzip) {
      unpacked.update(chunk as Buffer);
      unpackedSize += (chunk as Buffer).length;
    }
  })();
  unpacking.catch(() => {}); // awaited below; an early failure must not go unhandled meanwhile
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      packed.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      last = Buffer.concat([last, (chunk as Buffer).subarray(-4)]).subarray(-4);
      if (!gunzip.write(chunk)) await once(gunzip, 'drain');
    }
    gunzip.end();
    await unpacking;
  } catch {
    gunzip.destroy();
    await unpacking.catch(() => {});
    return undefined;
  }
  // zlib ignores bytes after the gzip member, gzip -dc on the target does not: the file
  // must end with the member's ISIZE (RFC 1952: the unpacked size, mod 2^32).
  if (last.length !== 4 || last.readUInt32LE(0) !== unpackedSize % 2 ** 32) return undefined;
  return { size, sha256: packed.digest('hex'), unpackedSha256: unpacked.digest('hex') };
}
