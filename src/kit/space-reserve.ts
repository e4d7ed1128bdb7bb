/**
 * A few megabytes kept on a volume so that, when the disk fills, the program can still
 * record what happened: release the reserve, write the failure, make the reserve again
 * once there is room.
 */
import { open, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Errors that mean the volume is full: ENOSPC from the file system, SQLITE_FULL from SQLite. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT';
}

export class SpaceReserve {
  /**
   * @param path the reserve file (on the volume to protect)
   * @param bytes its size
   */
  constructor(
    readonly path: string,
    readonly bytes: number,
  ) {}

  /**
   * Makes the reserve when it is missing and the volume has room for twice its size
   * (written, not sparse, then fsynced and renamed into place). Resolves whether the
   * reserve is in place; never rejects.
   */
  async ensure(): Promise<boolean> {
    if ((await stat(this.path).catch(() => undefined))?.size === this.bytes) return true;
    const temp = `${this.path}.partial`;
    try {
      const fs = await statfs(dirname(this.path));
      if (fs.bavail * fs.bsize < 2 * this.bytes) return false;
      const fh = await open(temp, 'w', 0o600);
      try {
        const chunk = Buffer.alloc(Math.min(this.bytes, 1024 * 1024));
        for (let written = 0; written < this.bytes; written += chunk.length) {
          await fh.write(chunk, 0, Math.min(chunk.length, this.bytes - written));
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, this.path);
      return true;
    } catch {
      await rm(temp, { force: true }).catch(() => undefined);
      return false;
    }
  }

  /** Deletes the reserve, giving its bytes back to the volume. Resolves whether there was one; never rejects. */
  async release(): Promise<boolean> {
    return rm(this.path).then(() => true, () => false);
  }
}
