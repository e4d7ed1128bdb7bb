/**
 * The inbox: a `.bin` copied into `<state-dir>/inbox/` (scp, a USB stick, a share) is
 * imported once it is complete: its size and mtime stayed the same over two scans and no
 * process has it open. It is moved to `inbox/.processing/` and queued; when the import
 * ends it goes to `inbox/processed/` or `inbox/failed/` (with `<name>.reason.txt`).
 */
import { readdir, readlink, rename, stat, mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { printable } from '../../kit/text.js';
import type { Importer } from '../import/runner.js';
import type { ImportRow } from '../store/imports.js';

export interface InboxOptions {
  dir: string;
  importer: Importer;
  log: Logger;
  onEvent: (actor: string, kind: string, message: string, data?: Record<string, unknown>) => void;
  /** Scan period, ms (default 1000). */
  intervalMs?: number;
}

interface Observation {
  size: number;
  mtimeMs: number;
  stableScans: number;
}

/** Folders inside the inbox. */
export function inboxDirs(dir: string): { processing: string; processed: string; failed: string } {
  return { processing: join(dir, '.processing'), processed: join(dir, 'processed'), failed: join(dir, 'failed') };
}

/** Whether any process has `path` open (Linux: /proc/<pid>/fd). Processes we may not inspect are skipped. */
export async function isOpenByAnyProcess(path: string): Promise<boolean> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === path) return true;
    }
  }
  return false;
}

/** The name a claimed file had in the inbox (claim() prefixes `<ms>-<hex>-`). */
function originalName(claimed: string): string {
  return claimed.replace(/^\d+-[0-9a-f]{8}-/, '');
}

/** A free name for `name` in `dir`: `name`, else `name.<n>`. */
async function freeName(dir: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const candidate = join(dir, n === 0 ? name : `${name}.${n}`);
    if (!(await stat(candidate).then(() => true, () => false))) return candidate;
  }
}

export class InboxWatcher {
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly seen = new Map<string, Observation>();
  private readonly onFinished = (row: ImportRow | undefined) => {
    if (row?.source === 'inbox') void this.settle(row);
  };

  constructor(private readonly options: InboxOptions) {}

  /** Starts scanning; also files the results of inbox imports that ended while the daemon was down. */
  async start(): Promise<void> {
    const dirs = inboxDirs(this.options.dir);
    for (const d of [this.options.dir, dirs.processing, dirs.processed, dirs.failed]) await mkdir(d, { recursive: true, mode: 0o700 });
    this.options.importer.on('finished', this.onFinished);
    // Files claimed before a restart: settle the finished ones, queue the never-queued ones
    // (queued and running ones are resumed by the importer and settled when they end).
    for (const name of await readdir(dirs.processing)) {
      const file = join(dirs.processing, name);
      const row = this.options.importer.latestOf(file);
      if (!row) this.options.importer.enqueue({ file, source: 'inbox', actor: 'inbox', options: {} });
      else if (row.state !== 'queued' && row.state !== 'running') await this.settle(row);
    }
    const tick = () => {
      this.scanning = this.scan()
        .catch((err: unknown) => this.options.log.error({ err }, 'inbox scan failed'))
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.options.intervalMs ?? 1000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.options.importer.off('finished', this.onFinished);
    await this.scanning;
  }

  private async scan(): Promise<void> {
    const entries = await readdir(this.options.dir, { withFileTypes: true });
    const present = new Set<string>();
    for (const entry of entries) {
      if (!entry.isFile() || entry.name.startsWith('.') || !entry.name.endsWith('.bin')) continue;
      const path = join(this.options.dir, entry.name);
      present.add(path);
      const s = await stat(path).catch(() => undefined);
      if (!s) continue;
      const before = this.seen.get(path);
      const stableScans = before && before.size === s.size && before.mtimeMs === s.mtimeMs ? before.stableScans + 1 : 0;
      this.seen.set(path, { size: s.size, mtimeMs: s.mtimeMs, stableScans });
      if (stableScans < 2 || (await isOpenByAnyProcess(path))) continue;
      this.seen.delete(path);
      await this.claim(path);
    }
    for (const path of this.seen.keys()) if (!present.has(path)) this.seen.delete(path);
  }

  private async claim(path: string): Promise<void> {
    // A name never used before, so an old import row of the same path cannot be mistaken for this file's.
    const dest = join(inboxDirs(this.options.dir).processing, `${Date.now()}-${randomBytes(4).toString('hex')}-${basename(path)}`);
    await rename(path, dest);
    this.options.log.info({ file: dest }, 'inbox: a complete .bin arrived');
    this.options.importer.enqueue({ file: dest, source: 'inbox', actor: 'inbox', options: {} });
  }

  /** Moves a finished inbox import's file to processed/ or failed/ (with the reason). */
  private async settle(row: ImportRow): Promise<void> {
    const dirs = inboxDirs(this.options.dir);
    if (!row.file.startsWith(`${dirs.processing}/`)) return;
    const failed = row.state === 'failed';
    const dest = await freeName(failed ? dirs.failed : dirs.processed, originalName(basename(row.file)));
    try {
      await rename(row.file, dest);
      if (failed) {
        // The message names entries of the refused file: printable, so `cat` of it cannot act on a terminal.
        const e = row.error;
        await writeFile(`${dest}.reason.txt`, `import ${row.id} failed: ${printable(e?.message ?? 'unknown')} [${e?.code ?? ''}]\n${e?.hint ? `hint: ${printable(e.hint)}\n` : ''}`, { mode: 0o644 });
      }
      this.options.onEvent('inbox', failed ? 'inbox.failed' : 'inbox.processed', `${basename(row.file)} moved to ${failed ? 'failed' : 'processed'}/`, { importId: row.id, file: dest });
    } catch (err) {
      this.options.log.error({ err, file: row.file }, 'inbox: could not move the file after its import');
    }
  }
}
