/**
 * `airgap backup`: the appliance's state in one file (docs/cli.md, "airgap backup and
 * airgap restore"). A backup is an uncompressed POSIX tar (ustar, pax for long names),
 * written 0600:
 *
 *   backup.json                      what it is (BackupHeader): first, so a restore can
 *                                    check the format and the free space before it writes
 *   state/airgap.db                  the database: an SQLite online backup, never a file copy
 *   state/pki/…                      the CA, the server certificate and their keys
 *   state/trusted-keys/…             the signing keys whose .bin files are imported
 *   state/config.yaml                the appliance settings (retention), when there are some
 *   data/registries/<name>/data/…    with --with-data: each registry's storage as it is
 *   data/repo/…, data/charts/…       with --with-data: the file and chart repositories
 *   manifest.json                    every entry before it with its size, mode and sha256:
 *                                    last, because the digests are known once the bytes are read
 *
 * Paths under state/ and data/ are relative to the state dir. What the daemon makes again
 * at start (registry config.yml and htpasswd, releases.json, the chart index) is not in
 * the state part; in-flight uploads (`_uploads`), import staging folders and temp files
 * are never in it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import tarStream from 'tar-stream';
import { AirgapError } from '../../kit/errors.js';
import { sha256Hex, sha256Tap } from '../../kit/digest.js';
import { syncDir } from '../../kit/fs.js';
import { REGISTRY_NAMES, type StateLayout } from '../config/state-layout.js';
import type { Db } from '../store/db.js';

export class BackupError extends AirgapError {}

/** The `format` of backup.json and manifest.json. */
export const BACKUP_FORMAT = 'airgap-backup';
/** The layout version this code writes and reads. */
export const BACKUP_FORMAT_VERSION = 1;
/** The settings file's name in the state dir and in state/ (config/config-file.ts). */
export const CONFIG_FILE = 'config.yaml';

/** backup.json: written first. */
export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  formatVersion: number;
  /** ISO 8601, UTC. */
  createdAt: string;
  /** The airgap release that wrote it. */
  airgapVersion: string;
  /** The database schema (PRAGMA user_version) of the snapshot. */
  schemaVersion: number;
  withData: boolean;
  /** Entries between backup.json and manifest.json, and their bytes (the space a restore needs). */
  files: number;
  bytes: number;
}

/** One entry of manifest.json. */
export interface BackupEntry {
  /** The tar path: state/… or data/…. */
  path: string;
  size: number;
  /** Permission bits, octal number. */
  mode: number;
  /** Hex. */
  sha256: string;
}

/** manifest.json: written last. */
export interface BackupManifest extends BackupHeader {
  entries: BackupEntry[];
}

/** What `airgap backup --json` prints. */
export interface BackupResult {
  file: string;
  createdAt: string;
  withData: boolean;
  files: number;
  bytes: number;
  /** sha256 of the whole backup file, hex. */
  sha256: string;
}

interface SourceFile {
  /** The tar path. */
  path: string;
  /** Where it is read from. */
  from: string;
  size: number;
  mode: number;
}

/** Files under `dir` (regular files only; no links followed), as tar paths under `prefix`. */
async function walk(dir: string, prefix: string, skip: (name: string, isDir: boolean) => boolean, out: SourceFile[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (skip(e.name, e.isDirectory())) continue;
    const from = join(dir, e.name);
    if (e.isDirectory()) await walk(from, `${prefix}/${e.name}`, skip, out);
    else if (e.isFile()) {
      const s = await lstat(from);
      out.push({ path: `${prefix}/${e.name}`, from, size: s.size, mode: s.mode & 0o777 });
    }
    // Links, sockets and the like are not state: the layout has none.
  }
}

/** Temp files and staging folders: never in a backup. */
const isTemp = (name: string) => name.startsWith('.') && (name.endsWith('.tmp') || name.includes('.partial') || name.startsWith('.deleting-'));

/**
 * The files a backup of `layout` holds (the database snapshot excepted), in tar order.
 * Throws the file system's errors.
 */
export async function backupSources(layout: StateLayout, withData: boolean): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const rel = (p: string) => relative(layout.root, p);
  // The PKI and the trusted keys are flat folders (restore takes nothing deeper): a sub-folder there is not state.
  await walk(layout.pkiDir, `state/${rel(layout.pkiDir)}`, (name, isDir) => isDir || isTemp(name), out);
  await walk(layout.trustedKeysDir, `state/${rel(layout.trustedKeysDir)}`, (name, isDir) => isDir || isTemp(name), out);
  const configStat = await lstat(layout.configFile).catch(() => undefined);
  if (configStat?.isFile()) out.push({ path: `state/${CONFIG_FILE}`, from: layout.configFile, size: configStat.size, mode: configStat.mode & 0o777 });
  if (withData) {
    for (const name of REGISTRY_NAMES) {
      const data = layout.registry(name).data;
      // In-flight uploads are not content; a restored registry never resumes them.
      await walk(data, `data/${rel(data)}`, (entry, isDir) => (isDir && entry === '_uploads') || isTemp(entry), out);
    }
    await walk(layout.repoDir, `data/${rel(layout.repoDir)}`, (name) => isTemp(name), out);
    await walk(layout.chartsDir, `data/${rel(layout.chartsDir)}`, (name) => isTemp(name), out);
  }
  return out;
}

/** Adds one entry of `size` bytes read from `source` (a path or bytes) to `pack`; returns its sha256. */
async function addEntry(pack: tarStream.Pack, path: string, size: number, mode: number, source: string | Buffer, signal?: AbortSignal): Promise<string> {
  const mtime = new Date();
  if (Buffer.isBuffer(source)) {
    await new Promise<void>((resolve, reject) => pack.entry({ name: path, size, mode, mtime, type: 'file' }, source, (err) => (err ? reject(err) : resolve())));
    return sha256Hex(source);
  }
  const entry = pack.entry({ name: path, size, mode, mtime, type: 'file' });
  const tap = sha256Tap();
  try {
    // Exactly `size` bytes: a file that grew is cut at the size the header gave; one that shrank fails below.
    await pipeline(size ? createReadStream(source, { start: 0, end: size - 1 }) : Readable.from([]), tap, entry, ...(signal ? [{ signal }] : []));
  } catch (cause) {
    if ((cause as Error).name === 'AbortError') throw cause;
    throw new BackupError('AG_BACKUP_CHANGED', `${source} changed or went away while it was read: ${(cause as Error).message}`, {
      cause,
      hint: 'run the backup again (the daemon holds imports and garbage collection while it runs)',
    });
  }
  if (tap.bytes() !== size) {
    throw new BackupError('AG_BACKUP_CHANGED', `${source} shrank while it was read (${tap.bytes()} of ${size} bytes)`, { hint: 'run the backup again' });
  }
  return tap.digest();
}

export interface WriteBackupOptions {
  withData: boolean;
  /** The airgap release, recorded in the backup. */
  airgapVersion: string;
  /** The daemon's open database; without it the file is opened read-only here. */
  db?: Db;
  signal?: AbortSignal;
  /** Called after each entry with the bytes written so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes a backup of the state dir `layout` to `sink` (docs/cli.md, "airgap backup"):
 * takes an SQLite online backup of the database into a temp file in the state dir,
 * then streams backup.json, the entries and manifest.json as a tar. Resolves with the
 * manifest once `sink` has taken every byte. Throws BackupError AG_BACKUP_CHANGED when a
 * file changes while it is read, AG_DB_OPEN when there is no database, and the stream's
 * or file system's errors; the temp snapshot is removed whatever happens.
 */
export async function writeBackup(layout: StateLayout, sink: Writable, options: WriteBackupOptions): Promise<BackupManifest> {
  const snapshot = join(layout.root, `.backup-${randomBytes(6).toString('hex')}.db`);
  try {
    // Made 0600 before SQLite writes into it: it holds every credential.
    await (await open(snapshot, 'wx', 0o600)).close();
    let schemaVersion: number;
    if (options.db) {
      await options.db.backup(snapshot);
      schemaVersion = options.db.pragma('user_version', { simple: true }) as number;
    } else {
      let db: Db;
      try {
        db = new Database(layout.database, { readonly: true, fileMustExist: true });
      } catch (cause) {
        throw new BackupError('AG_DB_OPEN', `there is no appliance database at ${layout.database}`, { cause, hint: 'pass --state-dir (or AIRGAP_STATE_DIR) of the appliance to back up' });
      }
      try {
        await db.backup(snapshot);
        schemaVersion = db.pragma('user_version', { simple: true }) as number;
      } finally {
        db.close();
      }
    }
    const dbSize = (await stat(snapshot)).size;
    const sources = await backupSources(layout, options.withData);
    const total = dbSize + sources.reduce((n, s) => n + s.size, 0);
    const header: BackupHeader = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      airgapVersion: options.airgapVersion,
      schemaVersion,
      withData: options.withData,
      files: sources.length + 1,
      bytes: total,
    };
    const pack = tarStream.pack();
    const written = pipeline(pack, sink, ...(options.signal ? [{ signal: options.signal }] : []));
    // A sink that fails stops the entries too; the error is thrown from `written`.
    written.catch((err: unknown) => pack.destroy(err as Error));
    const entries: BackupEntry[] = [];
    let done = 0;
    const add = async (path: string, size: number, mode: number, source: string | Buffer) => {
      entries.push({ path, size, mode, sha256: await addEntry(pack, path, size, mode, source, options.signal) });
      done += size;
      options.onProgress?.(done, total);
    };
    try {
      const headerBytes = Buffer.from(`${JSON.stringify(header, null, 2)}\n`);
      await addEntry(pack, 'backup.json', headerBytes.length, 0o600, headerBytes);
      await add('state/airgap.db', dbSize, 0o600, snapshot);
      for (const s of sources) await add(s.path, s.size, s.mode, s.from);
      const manifest: BackupManifest = { ...header, entries };
      const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      await addEntry(pack, 'manifest.json', manifestBytes.length, 0o600, manifestBytes);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      await written.catch(() => {});
      throw err;
    }
    await written;
    return { ...header, entries };
  } finally {
    await rm(snapshot, { force: true });
  }
}

/**
 * Writes a backup of `layout` to the file `out` (absolute): to a temp file (0600) next
 * to it, fsynced, then renamed over `out`, so `out` is a whole backup or what it was.
 * Returns what `airgap backup --json` prints. Throws as writeBackup, and BackupError
 * AG_BACKUP_OUT when the folder of `out` cannot be written.
 */
export async function writeBackupFile(layout: StateLayout, out: string, options: WriteBackupOptions): Promise<BackupResult> {
  const inside = relative(layout.root, out);
  if (!inside.startsWith('..') && !isAbsolute(inside)) {
    // Under repo/ it would be served with the CA key in it; anywhere else a restore replaces it.
    throw new BackupError('AG_BACKUP_OUT', `the backup cannot be written inside the state dir ${layout.root}`, { hint: 'write it elsewhere (/root/, a mounted disk) and copy it off the box' });
  }
  const temp = join(dirname(out), `.${basename(out)}.partial-${randomBytes(4).toString('hex')}`);
  const fh = await open(temp, 'wx', 0o600).catch((cause: NodeJS.ErrnoException) => {
    throw new BackupError('AG_BACKUP_OUT', `cannot write the backup in ${dirname(out)}: ${cause.code === 'ENOENT' ? 'no such folder' : cause.message}`, {
      cause,
      hint: 'choose a file in a folder that exists and the daemon can write (--out)',
    });
  });
  const digest = sha256Tap();
  try {
    const written = pipeline(digest, fh.createWriteStream());
    // Awaited below, or its failure is swallowed here once writeBackup has failed first.
    written.catch(() => {});
    let manifest: BackupManifest;
    try {
      manifest = await writeBackup(layout, digest, options);
    } catch (err) {
      digest.destroy(err as Error);
      await written.catch(() => {});
      throw err;
    }
    await written;
    const sync = await open(temp, 'r');
    await sync.sync();
    await sync.close();
    await rename(temp, out);
    await syncDir(dirname(out)).catch(() => {});
    return { file: out, createdAt: manifest.createdAt, withData: manifest.withData, files: manifest.files, bytes: digest.bytes(), sha256: digest.digest() };
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
}
