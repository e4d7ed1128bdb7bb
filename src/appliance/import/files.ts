/**
 * Import stage "files": the release's files go into the repository under
 * `/repo/<version>/<target>`. They are written into a hidden folder `.<version>.partial-<id>`
 * (each file: temp, hash in flight, fsync, chmod, rename) and the folder becomes
 * `<version>` only at commit, so a failed import never shows a half-filled release.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PayloadError } from '../../kit/errors.js';
import { syncDir } from '../../kit/fs.js';
import { openEntryStream } from '../../format/reader.js';
import type { TocFile } from '../../format/toc.js';
import type { ImportContext } from './context.js';

/** `repo/<version>` and its staging folder `repo/.<version>.partial-<import id>`. */
export function releaseDirs(repoDir: string, version: string, importId = 0): { final: string; partial: string } {
  return { final: join(repoDir, version), partial: join(repoDir, `.${version}.partial-${importId}`) };
}

/** Removes staging folders of `version` left by other (failed) imports, and temp files in ours. */
async function cleanStaging(repoDir: string, version: string, importId: number): Promise<void> {
  const mine = releaseDirs(repoDir, version, importId).partial;
  for (const name of await readdir(repoDir)) {
    const path = join(repoDir, name);
    if (name.startsWith(`.${version}.partial`) && path !== mine) await rm(path, { recursive: true, force: true });
  }
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.startsWith('.') && entry.name.endsWith('.tmp')) await rm(path, { force: true });
    }
  };
  await walk(mine);
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** True when `path` holds exactly `file` (size, then sha256). */
async function alreadyThere(path: string, file: TocFile): Promise<boolean> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile() || s.size !== file.size) return false;
  return (await sha256OfFile(path)) === file.sha256;
}

/**
 * Writes the files of the release. Files already in place (a resumed import, or a
 * repair of an installed release) are checked by sha256 and kept. Throws PayloadError
 * AG_ENTRY_DIGEST when the .bin's bytes are damaged (the temp file is removed).
 */
export async function installFiles(ctx: ImportContext, repoDir: string, version: string): Promise<void> {
  const files = ctx.plan.files;
  const dirs = releaseDirs(repoDir, version, ctx.importId);
  const installed = await stat(dirs.final).then((s) => s.isDirectory(), () => false);
  if (!installed) await cleanStaging(repoDir, version, ctx.importId);
  const root = installed ? dirs.final : dirs.partial;
  await mkdir(root, { recursive: true, mode: 0o755 });
  const bytesTotal = ctx.plan.fileBytes;
  let bytesDone = 0;
  let itemsDone = 0;
  const report = () => ctx.progress({ stage: 'files', bytesDone, bytesTotal, itemsDone, itemsTotal: files.length });
  report();
  for (const file of files) {
    ctx.signal.throwIfAborted();
    const dest = join(root, file.target);
    if (await alreadyThere(dest, file)) {
      ctx.counters.filesSkipped++;
    } else {
      await writeVerified(ctx, file, dest, (n) => {
        bytesDone += n;
        report();
      });
      bytesDone -= file.size; // added below once, whether written or skipped
      ctx.counters.filesWritten++;
    }
    bytesDone += file.size;
    itemsDone++;
    report();
  }
}

async function writeVerified(ctx: ImportContext, file: TocFile, dest: string, onBytes: (n: number) => void): Promise<void> {
  await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
  const temp = join(dirname(dest), `.${file.target.split('/').pop()}.${process.pid}.tmp`);
  const hash = createHash('sha256');
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(openEntryStream(ctx.opened, file.path), meter, createWriteStream(temp, { mode: 0o600 }), { signal: ctx.signal });
    if (hash.digest('hex') !== file.sha256) {
      throw new PayloadError('AG_ENTRY_DIGEST', `entry ${file.path} does not match its sha256; the file is damaged`, { hint: 'copy the file again' });
    }
    const fh = await open(temp, 'r+');
    await fh.chmod(file.mode);
    await fh.sync();
    await fh.close();
    await rename(temp, dest);
    await syncDir(dirname(dest));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** Makes this import's staging folder the visible `<version>` folder (idempotent). */
export async function publishFiles(repoDir: string, version: string, importId: number): Promise<void> {
  const dirs = releaseDirs(repoDir, version, importId);
  const partial = await stat(dirs.partial).then(() => true, () => false);
  if (!partial) return;
  await rename(dirs.partial, dirs.final);
  await syncDir(repoDir);
}
