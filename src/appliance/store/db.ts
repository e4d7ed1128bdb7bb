/**
 * The appliance database: one SQLite file (better-sqlite3) in WAL mode, mode 0600, with
 * numbered migrations tracked in `PRAGMA user_version`. All SQL lives in the store/
 * modules; the rest of the appliance calls their functions.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { AirgapError } from '../../kit/errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/** The schema version this code writes: the number of the last migration. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The page cache of the daemon's connection, KiB (SQLite's own default is about 2 MB). */
export const DB_CACHE_KIB = 4000;

/**
 * Opens (creating when missing) the database at `path`, mode 0600, WAL, foreign keys on,
 * a 5 s busy timeout, and applies the migrations it lacks, each in its own transaction.
 * Throws AirgapError AG_DB_NEWER when the file was written by a newer airgap, AG_DB_OPEN
 * when it cannot be opened or is not a database, AG_DB_CORRUPT when a page is damaged.
 */
export function openDatabase(path: string): Db {
  // Create the file 0600 before SQLite does, so its WAL and shm files inherit that mode.
  try {
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  } catch (cause) {
    throw new AirgapError('AG_DB_OPEN', `cannot create the database ${path}: ${(cause as Error).message}`, { cause });
  }
  let db: Db;
  try {
    db = new Database(path, { timeout: 5000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // A page cache of 4 MB, not better-sqlite3's 16 MB: the database is small, and the
    // 100,000 rows of a large release's commit would fill (and keep) all of it.
    db.pragma(`cache_size = -${DB_CACHE_KIB}`);
  } catch (cause) {
    throw new AirgapError('AG_DB_OPEN', `cannot open the database ${path}: ${(cause as Error).message}`, {
      cause,
      hint: 'restore it from a backup, or move it away to start with an empty one',
    });
  }
  try {
    migrate(db);
    checkIntegrity(db, path);
  } catch (err) {
    db.close();
    throw corruption(err, path) ?? err;
  }
  return db;
}

const CORRUPT_HINT = 'stop the daemon, move the file (and its -wal and -shm files) aside and restore it from a backup, or start with an empty one (the releases are then imported again)';

/** SQLite's "this is not a (sound) database" errors as AG_DB_CORRUPT, or undefined. */
function corruption(err: unknown, path: string): AirgapError | undefined {
  const code = (err as { code?: unknown }).code;
  if (code !== 'SQLITE_CORRUPT' && code !== 'SQLITE_NOTADB' && !String(code).startsWith('SQLITE_CORRUPT_')) return undefined;
  return new AirgapError('AG_DB_CORRUPT', `the database ${path} is damaged: ${(err as Error).message}`, { cause: err, hint: CORRUPT_HINT });
}

/**
 * `PRAGMA quick_check` (SQLite's O(n) structural check, without index contents): a damaged
 * page is found at start, not in the middle of an import. Throws AirgapError AG_DB_CORRUPT.
 */
function checkIntegrity(db: Db, path: string): void {
  const rows = db.pragma('quick_check(5)') as Array<{ quick_check: string }>;
  const problems = rows.map((r) => r.quick_check).filter((text) => text !== 'ok');
  if (problems.length) throw new AirgapError('AG_DB_CORRUPT', `the database ${path} is damaged: ${problems.join('; ')}`, { hint: CORRUPT_HINT });
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new AirgapError('AG_DB_NEWER', `the database has schema ${current}, newer than this airgap's ${SCHEMA_VERSION}`, {
      hint: 'run the airgap release that wrote it, or a newer one',
    });
  }
  for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
    const sql = MIGRATIONS[version - 1]!;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    })();
  }
}

/** The schema version stored in the file. */
export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}
