/** Import jobs and their blob journal: what each import has done, so a restart resumes it. */
import type Database from 'better-sqlite3';
import type { Db } from './db.js';
import type { BlobAction } from '../../transfer/context.js';

export type ImportState = 'queued' | 'running' | 'imported' | 'unchanged' | 'failed';
export type ImportSource = 'cli' | 'inbox' | 'upload';

export interface ImportOptions {
  allowDowngrade?: boolean;
}

export interface ImportRow {
  id: number;
  file: string;
  source: ImportSource;
  actor: string;
  options: ImportOptions;
  state: ImportState;
  stage: string | null;
  name: string | null;
  version: string | null;
  payloadSha256: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  resumed: number;
  error: { code: string; message: string; hint?: string } | null;
  result: unknown;
}

interface RawImportRow extends Omit<ImportRow, 'options' | 'error' | 'result'> {
  options: string;
  errorCode: string | null;
  errorMessage: string | null;
  errorHint: string | null;
  result: string | null;
}

const COLUMNS = `id, file, source, actor, options, state, stage, name, version, payload_sha256 AS payloadSha256,
  created_at AS createdAt, started_at AS startedAt, finished_at AS finishedAt, resumed,
  error_code AS errorCode, error_message AS errorMessage, error_hint AS errorHint, result`;

function toRow(raw: RawImportRow): ImportRow {
  const { errorCode, errorMessage, errorHint, options, result, ...rest } = raw;
  return {
    ...rest,
    options: JSON.parse(options) as ImportOptions,
    error: errorCode ? { code: errorCode, message: errorMessage ?? '', ...(errorHint ? { hint: errorHint } : {}) } : null,
    result: result ? (JSON.parse(result) as unknown) : null,
  };
}

const now = () => new Date().toISOString();

export function createImport(db: Db, job: { file: string; source: ImportSource; actor: string; options: ImportOptions }): ImportRow {
  const info = db
    .prepare("INSERT INTO imports (file, source, actor, options, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)")
    .run(job.file, job.source, job.actor, JSON.stringify(job.options), now());
  return getImport(db, Number(info.lastInsertRowid))!;
}

export function getImport(db: Db, id: number): ImportRow | undefined {
  const raw = db.prepare(`SELECT ${COLUMNS} FROM imports WHERE id = ?`).get(id) as RawImportRow | undefined;
  return raw ? toRow(raw) : undefined;
}

export function listImports(db: Db, limit = 50): ImportRow[] {
  return (db.prepare(`SELECT ${COLUMNS} FROM imports ORDER BY id DESC LIMIT ?`).all(limit) as RawImportRow[]).map(toRow);
}

/** The newest import of `file`, if any. */
export function latestImportOf(db: Db, file: string): ImportRow | undefined {
  const raw = db.prepare(`SELECT ${COLUMNS} FROM imports WHERE file = ? ORDER BY id DESC LIMIT 1`).get(file) as RawImportRow | undefined;
  return raw ? toRow(raw) : undefined;
}

/** Imports a daemon left queued or running, oldest first (resumed at start-up). */
export function unfinishedImports(db: Db): ImportRow[] {
  return (db.prepare(`SELECT ${COLUMNS} FROM imports WHERE state IN ('queued', 'running') ORDER BY id`).all() as RawImportRow[]).map(toRow);
}

export function markStarted(db: Db, id: number, resumed: boolean): void {
  db.prepare(`UPDATE imports SET state = 'running', started_at = COALESCE(started_at, ?), resumed = resumed + ? WHERE id = ?`).run(now(), resumed ? 1 : 0, id);
}

export function setStage(db: Db, id: number, stage: string): void {
  db.prepare('UPDATE imports SET stage = ? WHERE id = ?').run(stage, id);
}

export function setIdentity(db: Db, id: number, identity: { name: string; version: string; payloadSha256: string }): void {
  db.prepare('UPDATE imports SET name = ?, version = ?, payload_sha256 = ? WHERE id = ?').run(identity.name, identity.version, identity.payloadSha256, id);
}

export function finishImport(db: Db, id: number, state: 'imported' | 'unchanged', result: unknown): void {
  db.prepare('UPDATE imports SET state = ?, finished_at = ?, result = ? WHERE id = ?').run(state, now(), JSON.stringify(result), id);
}

export function failImport(db: Db, id: number, error: { code: string; message: string; hint?: string | undefined }): void {
  db.prepare("UPDATE imports SET state = 'failed', finished_at = ?, error_code = ?, error_message = ?, error_hint = ? WHERE id = ?").run(
    now(),
    error.code,
    error.message,
    error.hint ?? null,
    id,
  );
}

export type { BlobAction };

export interface JournalEntry {
  registry: string;
  repository: string;
  digest: string;
  size: number;
  action: BlobAction;
}

type Statement = Database.Statement<unknown[]>;

/** Statements prepared once per connection: the journal is written and asked once per blob. */
const statements = new WeakMap<Db, Map<string, Statement>>();
function prepared(db: Db, sql: string): Statement {
  let byText = statements.get(db);
  if (!byText) statements.set(db, (byText = new Map<string, Statement>()));
  let statement = byText.get(sql);
  if (!statement) byText.set(sql, (statement = db.prepare(sql)));
  return statement;
}

const INSERT_JOURNAL = 'INSERT OR IGNORE INTO import_blobs (import_id, registry, repository, digest, size, action, at) VALUES (?, ?, ?, ?, ?, ?, ?)';

/** Journals one finished blob of an import (idempotent). */
export function journalBlob(db: Db, importId: number, entry: JournalEntry): void {
  journalBlobs(db, importId, [entry]);
}

/** Journals finished blobs of an import in one transaction (idempotent). */
export function journalBlobs(db: Db, importId: number, entries: readonly JournalEntry[]): void {
  const insert = prepared(db, INSERT_JOURNAL);
  const at = now();
  db.transaction(() => {
    for (const e of entries) insert.run(importId, e.registry, e.repository, e.digest, e.size, e.action, at);
  })();
}

/** The blobs an import has finished, keyed `registry repository digest`. */
export function journalOf(db: Db, importId: number): Map<string, JournalEntry> {
  const rows = db.prepare('SELECT registry, repository, digest, size, action FROM import_blobs WHERE import_id = ?').all(importId) as JournalEntry[];
  return new Map(rows.map((r) => [`${r.registry} ${r.repository} ${r.digest}`, r]));
}

/** Repositories of `registry` that some import put `digest` into: candidates for a mount. */
export function repositoriesWithBlob(db: Db, registry: string, digest: string): string[] {
  return (prepared(db, 'SELECT DISTINCT repository FROM import_blobs WHERE registry = ? AND digest = ?').all(registry, digest) as Array<{ repository: string }>).map((r) => r.repository);
}
