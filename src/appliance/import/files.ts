/**
 * Import stage "files": the release's files go into the repository under
 * `/repo/<version>/<target>`. They are written into a hidden folder `.<version>.partial-<id>`
 * (each file: temp, hash in flight, chmod, rename; then one flush of the file system) and
 * the folder becomes `<version>` only at commit, so a failed import never shows a
 * half-filled release.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PayloadError } from '../../kit/errors.js';
import { fsyncPath, syncDir, syncFileSystem } from '../../kit/fs.js';
import { openEntryStream, readSmallEntry } from '../../format/reader.js';
import type { TocFile } from '../../format/toc.js';
import { runPool } from '../../kit/pool.js';
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

/** Files up to this size are read, checked and written in one piece; larger ones stream. */
const WHOLE_FILE_BYTES = 1024 * 1024;

/** Files written at once: small files are bound by system calls, so they overlap well. */
const FILE_LANES = 8;

async function sha256OfFile(path: string, size: number): Promise<string> {
  if (size <= WHOLE_FILE_BYTES) return createHash('sha256').update(await readFile(path)).digest('hex');
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** True when `path` holds exactly `file` (size, then sha256). */
async function alreadyThere(path: string, file: TocFile): Promise<boolean> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile() || s.size !== file.size) return false;
  return (await sha256OfFile(path, file.size)) === file.sha256;
}

/**
 * Writes the files of the release, several at once. Files already in place (a resumed
 * import, or a repair of an installed release) are checked by sha256 and kept. Nothing is
 * fsynced file by file: once all are written, one flush of the file system (syncfs) puts
 * their data and folder entries on disk before the commit makes them visible; a crash
 * before that leaves only the hidden staging folder, whose files are checked again on
 * resume. Throws PayloadError AG_ENTRY_DIGEST when the .bin's bytes are damaged (the temp
 * file is removed).
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
  const folders = new Map<string, Promise<unknown>>([[root, Promise.resolve()]]);
  const folderOf = (dest: string) => {
    const dir = dirname(dest);
    let made = folders.get(dir);
    if (!made) folders.set(dir, (made = mkdir(dir, { recursive: true, mode: 0o755 })));
    return made;
  };
  let written = 0;
  await runPool(files, FILE_LANES, ctx.signal, async (file) => {
    const dest = join(root, file.target);
    if (await alreadyThere(dest, file)) {
      ctx.counters.filesSkipped++;
      bytesDone += file.size;
    } else {
      await folderOf(dest);
      let counted = 0;
      await writeVerified(ctx, file, dest, (n) => {
        counted += n;
        bytesDone += n;
        report();
      });
      bytesDone += file.size - counted; // whole-file writes report nothing on the way
      ctx.counters.filesWritten++;
      written++;
    }
    itemsDone++;
    report();
  });
  if (written && !(await syncFileSystem(root, ctx.signal))) {
    // No syncfs here: fsync each file and folder instead (slower, the same guarantee).
    await runPool(files, FILE_LANES * 2, ctx.signal, (file) => fsyncPath(join(root, file.target)));
    await runPool([...folders.keys()], FILE_LANES * 2, ctx.signal, (dir) => syncDir(dir));
  }
}


function digestMismatch(file: TocFile): PayloadError {
  return new PayloadError('AG_ENTRY_DIGEST', `entry ${file.path} does not match its sha256; the file is damaged`, { hint: 'copy the file again' });
}

/** Writes `file` to a temp name beside `dest`, checks its sha256 on the way, then renames it into place with its mode. */
async function writeVerified(ctx: ImportContext, file: TocFile, dest: string, onBytes: (n: number) => void): Promise<void> {
  const temp = join(dirname(dest), `.${file.target.split('/').pop()}.${process.pid}.tmp`);
  try {
    if (file.size <= WHOLE_FILE_BYTES) {
      const entry = ctx.opened.byPath.get(file.path);
      if (!entry) throw new PayloadError('AG_NOT_FOUND', `no entry '${file.path}' in ${ctx.opened.file}`);
      const data = await readSmallEntry(ctx.opened.handle, entry, WHOLE_FILE_BYTES);
      if (createHash('sha256').update(data).digest('hex') !== file.sha256) throw digestMismatch(file);
      const fh = await open(temp, 'w', 0o600);
      try {
        await fh.writeFile(data);
        await fh.chmod(file.mode);
      } finally {
        await fh.close();
      }
    } else {
      const hash = createHash('sha256');
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          onBytes(chunk.length);
          callback(null, chunk);
        },
      });
      await pipeline(openEntryStream(ctx.opened, file.path), meter, createWriteStream(temp, { mode: 0o600 }), { signal: ctx.signal });
      if (hash.digest('hex') !== file.sha256) throw digestMismatch(file);
      await chmod(temp, file.mode);
    }
    await rename(temp, dest);
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
