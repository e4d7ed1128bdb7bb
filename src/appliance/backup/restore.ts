/**
 * `airgap restore FILE`: a backup (backup.ts) back into a state dir, with no daemon
 * running on it (docs/cli.md, "airgap backup and airgap restore").
 *
 * Everything is written into a staging folder in the state dir first and checked there:
 * the format, each entry's path (only the layout's own places; no links, no `..`, no
 * duplicates), each entry's sha256 and size against manifest.json, and the database
 * (SQLite's own check, then the migrations). Only then does the state dir change: what
 * was there is moved aside, the restored parts are renamed in (the database last), and
 * what was aside is removed. A bad backup leaves the state dir as it was.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { mkdir, readFile, rm, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import semver from 'semver';
import tarStream from 'tar-stream';
import { sha256Tap } from '../../kit/digest.js';
import { formatBytes, printable } from '../../kit/text.js';
import { REGISTRY_NAMES, type StateLayout } from '../config/state-layout.js';
import { releaseStateDir, takeStateDir } from '../daemon/state-dir.js';
import { stopOrphan } from '../registries/supervisor.js';
import { openDatabase, type Db } from '../store/db.js';
import { recordEvent } from '../store/events.js';
import { currentRelease, listReleases, markAllNeedReimport } from '../store/releases.js';
import { repoAddress } from '../daemon/setup.js';
import { rollBackInterruptedSwap, swapIn } from './swap.js';
import { BACKUP_FORMAT, BACKUP_FORMAT_VERSION, BackupError, CONFIG_FILE, type BackupEntry, type BackupHeader, type BackupManifest } from './backup.js';

/** backup.json is a few hundred bytes; manifest.json lists every entry (about 150 bytes each). */
const HEADER_LIMIT = 64 * 1024;
const MANIFEST_LIMIT = 256 * 1024 * 1024;
/** Kept free after a restore, bytes. */
const RESTORE_RESERVE = 64 * 1024 * 1024;

export interface RestoreOptions {
  /** Replace a state dir that is in use (it records a release or a repo address). */
  force: boolean;
  signal?: AbortSignal;
  /** Called as bytes are written, with the total backup.json announces. */
  onProgress?: (done: number, total: number) => void;
}

/** What `airgap restore --json` prints. */
export interface RestoreResult {
  stateDir: string;
  /** When the backup was made, and by which airgap. */
  createdAt: string;
  airgapVersion: string;
  withData: boolean;
  files: number;
  bytes: number;
  /** SHA-256 fingerprint of the restored CA certificate (colon-separated hex). */
  caFingerprintSha256: string | null;
  repoAddress: string | null;
  current: string | null;
  releases: Array<{ version: string; name: string; current: boolean; needsReimport: boolean; file: string | null }>;
  /** The .bin files to import again (without data), oldest version first. */
  reimport: string[];
  /** Whether a state dir in use was replaced (--force). */
  replaced: boolean;
}

/** The state dir's own places a backup may write: state/… and data/… paths, relative to the state dir. */
function targetOf(name: string, withData: boolean): string {
  const bad = (why: string) => new BackupError('AG_BACKUP_DAMAGED', `the backup has an entry ${JSON.stringify(name)} that ${why}`, { hint: 'this file is not a backup airgap wrote, or it was changed; use another backup' });
  const slash = name.indexOf('/');
  const part = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  if (slash < 0 || (part !== 'state' && part !== 'data')) throw bad('is outside state/ and data/');
  const parts = rest.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) throw bad('is not a plain relative path');
  if (part === 'state') {
    const ok = (parts.length === 1 && (parts[0] === 'airgap.db' || parts[0] === CONFIG_FILE)) || (parts.length === 2 && (parts[0] === 'pki' || parts[0] === 'trusted-keys'));
    if (!ok) throw bad('is not a part of the state this airgap restores');
  } else {
    if (!withData) throw bad('holds data, but backup.json says the backup has none');
    const ok =
      ((parts[0] === 'repo' || parts[0] === 'charts') && parts.length >= 2) ||
      (parts[0] === 'registries' && (REGISTRY_NAMES as readonly string[]).includes(parts[1] ?? '') && parts[2] === 'data' && parts.length >= 4);
    if (!ok) throw bad('is not in a registry storage, the file repository or the chart repository');
  }
  return parts.join('/');
}

/** Reads a whole small entry, at most `limit` bytes. */
async function readSmall(entry: AsyncIterable<unknown>, size: number, limit: number, what: string): Promise<Buffer> {
  if (size > limit) throw new BackupError('AG_BACKUP_DAMAGED', `the backup's ${what} is ${formatBytes(size)}, more than ${formatBytes(limit)}`, { hint: 'use another backup' });
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (cause) {
    throw new BackupError('AG_BACKUP_DAMAGED', `the backup's ${what} is not JSON`, { cause, hint: 'use another backup' });
  }
}

function checkHeader(header: BackupHeader): void {
  if (header?.format !== BACKUP_FORMAT) {
    throw new BackupError('AG_BACKUP_FORMAT', 'this file is not an airgap backup (backup.json names another format)', { hint: "make one with 'airgap backup --out FILE'" });
  }
  if (header.formatVersion !== BACKUP_FORMAT_VERSION) {
    throw new BackupError('AG_BACKUP_FORMAT', `the backup has layout ${header.formatVersion}; this airgap reads layout ${BACKUP_FORMAT_VERSION}`, { hint: `restore it with airgap ${printable(String(header.airgapVersion))} or newer` });
  }
  if (typeof header.withData !== 'boolean' || !Number.isSafeInteger(header.bytes) || header.bytes < 0) {
    throw new BackupError('AG_BACKUP_DAMAGED', "the backup's backup.json is incomplete", { hint: 'use another backup' });
  }
}

/**
 * Whether the state dir records work: a release or a repo address. Read-only: a refused
 * restore changes nothing, not even the database's WAL. A database that cannot be read
 * counts as in use (only --force replaces it).
 */
function inUse(layout: StateLayout): { releases: number; repoAddress: string | null } | undefined {
  if (!existsSync(layout.database)) return undefined;
  let db: Database.Database | undefined;
  try {
    db = new Database(layout.database, { readonly: true, fileMustExist: true });
    const releases = (db.prepare('SELECT COUNT(*) AS n FROM releases').get() as { n: number }).n;
    const address = db.prepare("SELECT value FROM settings WHERE key = 'repo.address'").get() as { value: string } | undefined;
    return { releases, repoAddress: address?.value ?? null };
  } catch {
    return { releases: 0, repoAddress: 'unknown (its database cannot be read)' };
  } finally {
    db?.close();
  }
}

/**
 * Restores the backup read from `source` into the state dir `layout` (see the module
 * comment for the steps). Takes the state dir's lock for its run, so no daemon starts
 * meanwhile. Throws StateDirError AG_DAEMON_RUNNING when a daemon holds it, BackupError
 * AG_STATE_EXISTS when it is in use and `force` is not set, AG_BACKUP_FORMAT for a file
 * that is not a backup of this layout, AG_BACKUP_DAMAGED for a damaged or truncated one,
 * ImportRefused-like AG_NO_SPACE when the volume cannot take it, and the database's
 * AG_DB_NEWER / AG_DB_CORRUPT; in each case the state dir is as it was.
 */
export async function restoreBackup(source: Readable, layout: StateLayout, options: RestoreOptions): Promise<RestoreResult> {
  await takeStateDir(layout);
  try {
    // A restore a crash interrupted in its swap is rolled back first: the old state is back
    // (and counts as in use below), then this one starts over.
    await rollBackInterruptedSwap(layout.root);
    const live = inUse(layout);
    if (live && (live.releases > 0 || live.repoAddress) && !options.force) {
      throw new BackupError('AG_STATE_EXISTS', `the state dir ${layout.root} is in use (${live.releases} release(s)${live.repoAddress ? `, repo address ${live.repoAddress}` : ''}); restore does not overwrite it`, {
        hint: 'restore into a fresh state dir (--state-dir), or pass --force to replace this one',
      });
    }
    // Registries (and a garbage collection) a killed daemon left running serve from what is
    // about to be moved aside, and hold the ports the restored daemon needs.
    for (const name of REGISTRY_NAMES) {
      const paths = layout.registry(name);
      await stopOrphan(paths.pidFile, paths.config);
      await stopOrphan(paths.gcPidFile, paths.config);
    }
    const staging = join(layout.root, `.restore-${randomBytes(6).toString('hex')}`);
    await mkdir(staging, { mode: 0o700 });
    try {
      const { header, manifest } = await extract(source, staging, options);
      const result = await prepareDatabase(join(staging, 'airgap.db'), header, layout.root, staging);
      await swapIn(layout.root, staging);
      return { ...result, replaced: live !== undefined && (live.releases > 0 || live.repoAddress !== null), files: manifest.entries.length };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  } finally {
    await releaseStateDir(layout);
  }
}

/** Reads the tar into `staging`, checking every entry; returns backup.json and manifest.json. */
async function extract(source: Readable, staging: string, options: RestoreOptions): Promise<{ header: BackupHeader; manifest: BackupManifest }> {
  const reader = tarStream.extract();
  const feeding = pipeline(source, reader, ...(options.signal ? [{ signal: options.signal }] : []));
  let fed: unknown;
  feeding.catch((err: unknown) => (fed = err));
  let header: BackupHeader | undefined;
  let manifest: BackupManifest | undefined;
  const seen = new Map<string, BackupEntry>();
  let done = 0;
  try {
    for await (const entry of reader) {
      const h = entry.header;
      if (manifest) throw new BackupError('AG_BACKUP_DAMAGED', `the backup has an entry after manifest.json (${JSON.stringify(h.name)})`, { hint: 'use another backup' });
      if (h.type === 'directory') {
        entry.resume();
        continue;
      }
      if (h.type !== 'file') throw new BackupError('AG_BACKUP_DAMAGED', `the backup has an entry ${JSON.stringify(h.name)} of type ${h.type}; only files are restored`, { hint: 'use another backup' });
      const size = h.size ?? 0;
      if (!header) {
        if (h.name !== 'backup.json') throw new BackupError('AG_BACKUP_FORMAT', 'this file is not an airgap backup (it does not start with backup.json)', { hint: "make one with 'airgap backup --out FILE'" });
        header = parseJson<BackupHeader>(await readSmall(entry, size, HEADER_LIMIT, 'backup.json'), 'backup.json');
        checkHeader(header);
        const fs = await statfs(staging);
        const free = fs.bavail * fs.bsize;
        if (header.bytes + RESTORE_RESERVE > free) {
          throw new BackupError('AG_NO_SPACE', `the backup needs ${formatBytes(header.bytes)}; the state dir's volume has ${formatBytes(free)} free`, { hint: 'free space there (or grow the disk) and restore again; nothing was changed' });
        }
        continue;
      }
      if (h.name === 'manifest.json') {
        manifest = parseJson<BackupManifest>(await readSmall(entry, size, MANIFEST_LIMIT, 'manifest.json'), 'manifest.json');
        continue;
      }
      const target = targetOf(h.name, header.withData);
      if (seen.has(h.name)) throw new BackupError('AG_BACKUP_DAMAGED', `the backup has ${JSON.stringify(h.name)} twice`, { hint: 'use another backup' });
      const path = join(staging, target);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const tap = sha256Tap((n) => (done += n));
      // Owner read and write always; never set-id bits, never group or world write.
      const mode = ((h.mode ?? 0o600) & 0o755) | 0o600;
      await pipeline(entry, tap, createWriteStream(path, { flags: 'wx', mode }));
      seen.set(h.name, { path: h.name, size: tap.bytes(), mode, sha256: tap.digest() });
      options.onProgress?.(done, header.bytes);
    }
  } catch (err) {
    await feeding.catch(() => {});
    if (err instanceof BackupError) throw err;
    throw damaged(err);
  }
  await feeding.catch(() => {});
  if (fed) throw damaged(fed);
  if (!header) throw new BackupError('AG_BACKUP_FORMAT', 'this file is not an airgap backup (it has no backup.json)', { hint: "make one with 'airgap backup --out FILE'" });
  if (!manifest) throw new BackupError('AG_BACKUP_DAMAGED', 'the backup ends before its manifest.json: it is truncated', { hint: 'copy the whole file again, or use another backup' });
  checkManifest(header, manifest, seen);
  return { header, manifest };
}

function damaged(err: unknown): BackupError {
  if ((err as Error).name === 'AbortError') throw err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') return new BackupError('AG_NO_SPACE', "the state dir's volume filled up during the restore", { cause: err, hint: 'free space there and restore again; nothing was changed' });
  return new BackupError('AG_BACKUP_DAMAGED', `the backup cannot be read: ${(err as Error).message}`, { cause: err, hint: 'it may be truncated or damaged: copy it again, or use another backup' });
}

/** Every entry the manifest lists, with its size and sha256, and nothing else. */
function checkManifest(header: BackupHeader, manifest: BackupManifest, seen: Map<string, BackupEntry>): void {
  const bad = (why: string) => new BackupError('AG_BACKUP_DAMAGED', `the backup does not match its manifest: ${why}`, { hint: 'it was changed or damaged; use another backup' });
  if (manifest.format !== header.format || manifest.createdAt !== header.createdAt || manifest.withData !== header.withData || !Array.isArray(manifest.entries)) throw bad('manifest.json and backup.json differ');
  if (manifest.entries.length !== seen.size) throw bad(`it lists ${manifest.entries.length} entries, the file holds ${seen.size}`);
  if (new Set(manifest.entries.map((e) => e.path)).size !== manifest.entries.length) throw bad('it lists an entry twice');
  const bytes = [...seen.values()].reduce((n, e) => n + e.size, 0);
  if (header.files !== seen.size || header.bytes !== bytes) throw bad(`backup.json announces ${header.files} entries of ${header.bytes} bytes; the file holds ${seen.size} of ${bytes}`);
  for (const e of manifest.entries) {
    const got = seen.get(e.path);
    if (!got) throw bad(`${JSON.stringify(e.path)} is missing`);
    if (got.size !== e.size || got.sha256 !== e.sha256) throw bad(`${JSON.stringify(e.path)} has other bytes (sha256 ${got.sha256}, listed ${e.sha256})`);
  }
  if (!seen.has('state/airgap.db')) throw bad('it has no database');
}

/**
 * Opens the restored database (SQLite's check, the migrations), records the restore, and
 * without data marks every release as needing its .bin again and forgets the blob
 * journal (no blob is on the box). Imports the backup saw waiting are failed: their
 * files are on the old box. Returns the result without the counts swapIn adds.
 */
async function prepareDatabase(path: string, header: BackupHeader, root: string, staging: string): Promise<Omit<RestoreResult, 'replaced' | 'files'>> {
  const db: Db = openDatabase(path);
  try {
    db.transaction(() => {
      db.prepare(
        "UPDATE imports SET state = 'failed', finished_at = ?, error_code = 'AG_IMPORT_FAILED', error_message = 'the backup was taken before this import ran', error_hint = 'import the file again' WHERE state IN ('queued', 'running')",
      ).run(new Date().toISOString());
      if (!header.withData) {
        markAllNeedReimport(db);
        db.prepare('DELETE FROM import_blobs').run();
      }
      recordEvent(db, {
        actor: 'cli',
        kind: 'backup.restored',
        message: `restored the backup of ${header.createdAt}${header.withData ? ' with its data' : ' without data: the releases need their .bin files again'}`,
        data: { createdAt: header.createdAt, airgapVersion: header.airgapVersion, withData: header.withData },
      });
    })();
    const fileOf = db.prepare('SELECT file FROM imports WHERE id = ?');
    const releases = listReleases(db).map((r) => ({
      version: r.version,
      name: r.name,
      current: r.current,
      needsReimport: r.needsReimport,
      file: ((fileOf.get(r.importId) as { file: string } | undefined)?.file ?? null),
    }));
    const order = (v: string) => semver.valid(v, { loose: true }) ?? '0.0.0';
    const reimport = releases
      .filter((r) => r.needsReimport)
      .sort((a, b) => semver.compare(order(a.version), order(b.version), { loose: true }))
      .map((r) => (r.file ? basename(r.file) : `the .bin of ${r.name} ${r.version}`));
    const caPem = await readFile(join(staging, 'pki', 'ca.crt'), 'utf8').catch(() => undefined);
    db.pragma('wal_checkpoint(TRUNCATE)');
    return {
      stateDir: root,
      createdAt: header.createdAt,
      airgapVersion: header.airgapVersion,
      withData: header.withData,
      bytes: header.bytes,
      caFingerprintSha256: caPem ? new X509Certificate(caPem).fingerprint256 : null,
      repoAddress: repoAddress(db),
      current: currentRelease(db)?.version ?? null,
      releases,
      reimport,
    };
  } finally {
    db.close();
  }
}
