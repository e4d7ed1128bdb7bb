/** Small file-system helpers shared by the builder and, later, the appliance. */
import { execFile } from 'node:child_process';
import { open, rename, unlink, mkdir, stat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes `data` to `path` atomically: a temp file beside it, fsync, chmod `mode`, rename,
 * then fsync of the directory. Readers see the old file or the new one, never a part.
 * `data` may be an async iterable of chunks (a large document written as it is made).
 */
export async function writeFileAtomic(path: string, data: string | Buffer | AsyncIterable<string | Buffer>, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', mode);
  try {
    if (typeof data === 'string' || Buffer.isBuffer(data)) await fh.writeFile(data);
    else for await (const chunk of data) await fh.writeFile(chunk); // each from the current position
    await fh.chmod(mode);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(temp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(temp, path);
  await syncDir(dir);
}

/** fsync of a file or directory by path. Throws the file system's error. */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory so that a rename in it survives a crash. Best effort. */
export async function syncDir(dir: string): Promise<void> {
  await fsyncPath(dir).catch(() => {});
}

/**
 * Flushes every dirty page and inode of the file system that holds `path` (Linux
 * syncfs(2), through coreutils' `sync --file-system`): one call instead of an fsync per
 * file, for stages that write many files and need them all on disk before a commit.
 * Resolves false when `sync` cannot do it (not there, too old, or failed), so the caller
 * can fsync file by file. Rejects only when `signal` aborts it.
 */
export async function syncFileSystem(path: string, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile('sync', ['--file-system', path], { signal, timeout: 0 }, (err) => {
      if (err && signal?.aborted) reject(signal.reason as Error);
      else resolve(!err);
    });
  });
}

/** Why a file or folder can be changed by another user, and the command that closes it. */
export interface UnsafeOwnership {
  problem: string;
  fix: string;
}

/**
 * Whether `path` (symbolic links followed) could be changed by a user other than this
 * process's user and root: group- or world-writable, or owned by another user. Returns
 * what is wrong and the command that fixes it (`chmod 755 …`, `chown …`), or undefined
 * when it is safe. Throws the file system's errors (ENOENT included).
 */
export async function unsafeOwnership(path: string): Promise<UnsafeOwnership | undefined> {
  const info = await stat(path);
  const uid = process.getuid?.() ?? 0;
  if (info.uid !== uid && info.uid !== 0) return { problem: `is owned by uid ${info.uid}, not by uid ${uid} (this process) or root`, fix: `chown ${uid} ${path}` };
  if (info.mode & 0o022) {
    const mode = (info.mode & 0o7777 & ~0o022).toString(8).padStart(4, '0');
    return { problem: `is ${info.mode & 0o002 ? 'world' : 'group'}-writable (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')})`, fix: `chmod ${mode} ${path}` };
  }
  return undefined;
}
