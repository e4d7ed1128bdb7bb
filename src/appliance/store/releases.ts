/** Releases on the box and the artifacts each one brought. */
import { AirgapError } from '../../kit/errors.js';
import type { Db } from './db.js';

export interface ReleaseRow {
  version: string;
  name: string;
  created: string;
  payloadSha256: string;
  tocSha256: string;
  keyId: string | null;
  importId: number;
  importedAt: string;
  current: boolean;
  /** Restored from a backup without its data: recorded, not on the registries until its .bin is imported again. */
  needsReimport: boolean;
}

export type ArtifactKind = 'image' | 'chart' | 'pack' | 'file';

export interface ArtifactRow {
  releaseVersion: string;
  kind: ArtifactKind;
  target: string;
  digest: string;
  size: number;
  mediaType: string | null;
  platforms: string[] | null;
}

const RELEASE_COLUMNS = `version, name, created, payload_sha256 AS payloadSha256, toc_sha256 AS tocSha256, key_id AS keyId,
  import_id AS importId, imported_at AS importedAt, current, needs_reimport AS needsReimport`;

type RawRelease = Omit<ReleaseRow, 'current' | 'needsReimport'> & { current: number; needsReimport: number };

function toRelease(raw: RawRelease): ReleaseRow {
  return { ...raw, current: raw.current === 1, needsReimport: raw.needsReimport === 1 };
}

export function getRelease(db: Db, version: string): ReleaseRow | undefined {
  const raw = db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE version = ?`).get(version) as RawRelease | undefined;
  return raw ? toRelease(raw) : undefined;
}

export function currentRelease(db: Db): ReleaseRow | undefined {
  const raw = db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE current = 1`).get() as RawRelease | undefined;
  return raw ? toRelease(raw) : undefined;
}

export function listReleases(db: Db): ReleaseRow[] {
  return (db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases ORDER BY imported_at`).all() as RawRelease[]).map(toRelease);
}

/**
 * Artifacts in (release, kind, target) order, filtered by kind and release. `files: false`
 * leaves the files out in the query: a release may hold 100,000 of them, and callers that
 * want images, charts and packs must not load them all to drop them.
 */
export function listArtifacts(db: Db, filter: { kind?: ArtifactKind; version?: string; files?: boolean } = {}): ArtifactRow[] {
  const rows = db
    .prepare(
      `SELECT release_version AS releaseVersion, kind, target, digest, size, media_type AS mediaType, platforms FROM artifacts
       WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR release_version = ?) AND (? OR kind != 'file') ORDER BY release_version, kind, target`,
    )
    .all(filter.kind ?? null, filter.kind ?? null, filter.version ?? null, filter.version ?? null, filter.files === false ? 0 : 1) as Array<Omit<ArtifactRow, 'platforms'> & { platforms: string | null }>;
  return rows.map((r) => ({ ...r, platforms: r.platforms ? (JSON.parse(r.platforms) as string[]) : null }));
}

/**
 * One page of release `version`'s artifacts of `kind`, in target order, after `after`
 * (keyset paging on the primary key: each page costs the same however far in it is).
 */
export function artifactPage(db: Db, version: string, kind: ArtifactKind, after: string, limit: number): Array<Pick<ArtifactRow, 'target' | 'digest' | 'size'>> {
  return db
    .prepare('SELECT target, digest, size FROM artifacts WHERE release_version = ? AND kind = ? AND target > ? ORDER BY target LIMIT ?')
    .all(version, kind, after, limit) as Array<Pick<ArtifactRow, 'target' | 'digest' | 'size'>>;
}

/**
 * Removes release `version`, its artifact rows and its finished imports' blob journals, in one transaction. The current
 * release is never removed: returns false for it (and for a version not recorded).
 */
export function deleteReleaseRows(db: Db, version: string): boolean {
  return db.transaction(() => {
    const row = db.prepare('SELECT current FROM releases WHERE version = ?').get(version) as { current: number } | undefined;
    if (!row || row.current === 1) return false;
    db.prepare('DELETE FROM artifacts WHERE release_version = ?').run(version);
    db.prepare('DELETE FROM releases WHERE version = ?').run(version);
    // Its imports' blob journals: they would still name repositories as holders of blobs
    // (mount sources, disk use) that garbage collection takes away.
    db.prepare("DELETE FROM import_blobs WHERE import_id IN (SELECT id FROM imports WHERE version = ? AND state NOT IN ('queued', 'running'))").run(version);
    return true;
  })();
}

/** Makes the recorded release `version` the current one. */
export function makeCurrent(db: Db, version: string): void {
  db.prepare('UPDATE releases SET current = 0 WHERE current = 1').run();
  db.prepare('UPDATE releases SET current = 1 WHERE version = ?').run(version);
}

/**
 * Records a release with its artifacts in one transaction; when `makeCurrent`, it
 * becomes the current release. The caller's other statements (finishing the import) can
 * join the same transaction by running inside `db.transaction`.
 */
export function insertRelease(db: Db, release: Omit<ReleaseRow, 'current' | 'needsReimport'>, artifacts: Iterable<Omit<ArtifactRow, 'releaseVersion'> & { source?: string | null }>, makeCurrent: boolean): void {
  if (makeCurrent) db.prepare('UPDATE releases SET current = 0 WHERE current = 1').run();
  db.prepare(
    'INSERT INTO releases (version, name, created, payload_sha256, toc_sha256, key_id, import_id, imported_at, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ).run(release.version, release.name, release.created, release.payloadSha256, release.tocSha256, release.keyId, release.importId, release.importedAt, makeCurrent ? 1 : 0);
  const insert = db.prepare('INSERT INTO artifacts (release_version, kind, target, digest, size, media_type, platforms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  for (const a of artifacts) insert.run(release.version, a.kind, a.target, a.digest, a.size, a.mediaType, a.platforms ? JSON.stringify(a.platforms) : null, a.source ?? null);
}

/** Marks every release as restored without its data (airgap restore): each needs its .bin imported again. */
export function markAllNeedReimport(db: Db): void {
  db.prepare('UPDATE releases SET needs_reimport = 1').run();
}

/** Release `version` is on the registries again (a repair import committed). */
export function clearNeedsReimport(db: Db, version: string): void {
  db.prepare('UPDATE releases SET needs_reimport = 0 WHERE version = ?').run(version);
}

/** Disk use of one release: what it holds, and what deleting it gives back. */
export interface ReleaseDiskUse {
  /** Its blobs (each registry and digest once) and its files, bytes. */
  bytes: number;
  /** The part no other release holds: what `releases delete` gives back after GC, bytes. */
  exclusiveBytes: number;
}

/**
 * Disk use per release, from the blob journal of the imports that installed it (every
 * blob of a release, pushed, mounted or already present, is journalled) and its file
 * sizes. Manifests are left out (a few KB each). A blob two releases hold counts in
 * both `bytes` and in neither `exclusiveBytes`. Returns a map keyed by version.
 */
export function releaseDiskUse(db: Db): Map<string, ReleaseDiskUse> {
  const out = new Map<string, ReleaseDiskUse>();
  for (const r of listReleases(db)) out.set(r.version, { bytes: 0, exclusiveBytes: 0 });
  const blobs = db
    .prepare(
      `WITH held AS (
         SELECT DISTINCT r.version, b.registry, b.digest, b.size FROM import_blobs b
         JOIN imports i ON i.id = b.import_id AND i.state = 'imported'
         JOIN releases r ON r.version = i.version),
       holders AS (SELECT registry, digest, COUNT(*) AS n FROM held GROUP BY registry, digest)
       SELECT h.version, SUM(h.size) AS bytes, SUM(CASE WHEN o.n = 1 THEN h.size ELSE 0 END) AS exclusiveBytes
       FROM held h JOIN holders o ON o.registry = h.registry AND o.digest = h.digest GROUP BY h.version`,
    )
    .all() as Array<{ version: string; bytes: number; exclusiveBytes: number }>;
  for (const b of blobs) out.set(b.version, { bytes: b.bytes, exclusiveBytes: b.exclusiveBytes });
  const files = db.prepare("SELECT release_version AS version, SUM(size) AS bytes FROM artifacts WHERE kind = 'file' GROUP BY release_version").all() as Array<{ version: string; bytes: number }>;
  for (const f of files) {
    const use = out.get(f.version);
    // Each release has its own folder under repo/: its files are its own.
    if (use) out.set(f.version, { bytes: use.bytes + f.bytes, exclusiveBytes: use.exclusiveBytes + f.bytes });
  }
  return out;
}

/** The last disk use computed on each database, with the state it was computed from. */
const diskUseMemo = new WeakMap<Db, { key: string; use: Map<string, ReleaseDiskUse> }>();

/**
 * `releaseDiskUse(db)`, computed again only when what it reads has changed: the releases
 * and the imports that installed them. An import journals its blobs while it runs and
 * none once it is 'imported', a release's files are written with it, and both go only
 * with a release delete, so those two lists (read in well under a millisecond) say when
 * the answer may differ. The query itself reads the whole blob journal (about 170 ms for
 * 20 releases of 1,000 images), too slow for every page of the console.
 */
export function releaseDiskUseMemo(db: Db): Map<string, ReleaseDiskUse> {
  const { key } = db
    .prepare(
      `SELECT coalesce((SELECT group_concat(version, ' ') FROM releases), '') || '|' ||
              coalesce((SELECT group_concat(id || '=' || version, ' ') FROM imports WHERE state = 'imported'), '') AS key`,
    )
    .get() as { key: string };
  const memo = diskUseMemo.get(db);
  if (memo && memo.key === key) return memo.use;
  const use = releaseDiskUse(db);
  diskUseMemo.set(db, { key, use });
  return use;
}

/** Where the images of every release came from (the TOC's `source`, as bundle.yaml wrote it), each once. */
export function imageSources(db: Db): string[] {
  return (db.prepare("SELECT DISTINCT source FROM artifacts WHERE kind = 'image' AND source IS NOT NULL ORDER BY source").all() as Array<{ source: string }>).map((r) => r.source);
}

/** One page of a keyset-paged list: its rows, the cursor of the page after it (null on the last page), and how many rows match in all. */
export interface Page<T> {
  items: T[];
  next: string | null;
  total: number;
}

/**
 * The cursor of a page: the sort key of the last row it showed, with the name of its list,
 * as base64url JSON. Opaque to clients; only `decodeCursor` of the same list reads it.
 */
function encodeCursor(list: string, key: string[]): string {
  return Buffer.from(JSON.stringify([list, ...key])).toString('base64url');
}

/**
 * The sort key a cursor of `list` holds (`arity` strings). Throws AirgapError
 * AG_BAD_REQUEST (400) for anything `encodeCursor` of that list did not write.
 */
function decodeCursor(cursor: string, list: string, arity: number): string[] {
  let parsed: unknown;
  try {
    parsed = /^[A-Za-z0-9_-]+$/.test(cursor) ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) : undefined;
  } catch {
    parsed = undefined;
  }
  const values: unknown[] = Array.isArray(parsed) ? parsed : [];
  if (values.length === arity + 1 && values[0] === list && values.every((v): v is string => typeof v === 'string')) return values.slice(1);
  throw new AirgapError('AG_BAD_REQUEST', `the cursor '${cursor.length > 40 ? `${cursor.slice(0, 40)}…` : cursor}' is not one the ${list} list gave`, {
    hint: "pass the 'next' of the page before as 'after', or leave 'after' out for the first page",
  });
}

/** What `artifactListPage` lists: one kind, of one release or of all, whose target holds `q`. */
export interface ArtifactQuery {
  kind: ArtifactKind;
  /** One release; every release when absent. */
  version?: string | undefined;
  /** A substring of the target, case-insensitive for ASCII letters (SQLite's lower()). */
  q?: string | undefined;
  /** The `next` of the page before; the first page when absent. */
  after?: string | undefined;
  /** Rows per page, 1 or more. */
  limit: number;
}

const ARTIFACT_COLUMNS = 'release_version AS releaseVersion, kind, target, digest, size, media_type AS mediaType, platforms';

/**
 * One page of artifacts of `query.kind` in (target, release) order, with the number that
 * match. Keyset paging in SQL: each page reads about `limit` rows, however deep it is
 * (one release: the primary key; every release: the index artifacts_kind_target of
 * migration 6). Throws AirgapError AG_BAD_REQUEST for a cursor this list did not give.
 */
export function artifactListPage(db: Db, query: ArtifactQuery): Page<ArtifactRow> {
  const list = `${query.kind}s`;
  const filter = ['kind = ?'];
  const args: unknown[] = [query.kind];
  if (query.version !== undefined) {
    filter.push('release_version = ?');
    args.push(query.version);
  }
  if (query.q) {
    filter.push('instr(lower(target), lower(?)) > 0');
    args.push(query.q);
  }
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM artifacts WHERE ${filter.join(' AND ')}`).get(...args) as { n: number }).n;
  const page = [...filter];
  const pageArgs = [...args];
  if (query.after !== undefined) {
    const [target, version] = decodeCursor(query.after, list, 2) as [string, string];
    // Within one release a target is unique; across releases the release breaks the tie.
    if (query.version !== undefined) {
      page.push('target > ?');
      pageArgs.push(target);
    } else {
      page.push('(target, release_version) > (?, ?)');
      pageArgs.push(target, version);
    }
  }
  const rows = db
    .prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE ${page.join(' AND ')} ORDER BY target, release_version LIMIT ?`)
    .all(...pageArgs, query.limit + 1) as Array<Omit<ArtifactRow, 'platforms'> & { platforms: string | null }>;
  const items = rows.slice(0, query.limit).map((r) => ({ ...r, platforms: r.platforms ? (JSON.parse(r.platforms) as string[]) : null }));
  const last = items[items.length - 1];
  return { items, next: rows.length > query.limit && last ? encodeCursor(list, [last.target, last.releaseVersion]) : null, total };
}

/** A release without its artifact lists: what it is, its disk use, and how many artifacts of each kind it holds. */
export interface ReleaseSummary {
  version: string;
  name: string;
  created: string;
  importedAt: string;
  current: boolean;
  needsReimport: boolean;
  /** Bytes it holds (releaseDiskUse). */
  diskBytes: number;
  /** Bytes no other release holds: what deleting it gives back. */
  exclusiveBytes: number;
  images: number;
  charts: number;
  packs: number;
  files: number;
}

/** `rows` with their disk use and artifact counts (one grouped query on the primary key for the counts). */
/** How many artifacts of each kind release `version` holds (one grouped query). */
export function artifactCounts(db: Db, version: string): Record<ArtifactKind, number> {
  const counts: Record<ArtifactKind, number> = { image: 0, chart: 0, pack: 0, file: 0 };
  for (const c of db.prepare('SELECT kind, COUNT(*) AS n FROM artifacts WHERE release_version = ? GROUP BY kind').all(version) as Array<{ kind: ArtifactKind; n: number }>) counts[c.kind] = c.n;
  return counts;
}

function summarize(db: Db, rows: ReleaseRow[]): ReleaseSummary[] {
  if (!rows.length) return [];
  const counts = db
    .prepare(`SELECT release_version AS version, kind, COUNT(*) AS n FROM artifacts WHERE release_version IN (${rows.map(() => '?').join(', ')}) GROUP BY release_version, kind`)
    .all(...rows.map((r) => r.version)) as Array<{ version: string; kind: ArtifactKind; n: number }>;
  const countOf = (version: string, kind: ArtifactKind) => counts.find((c) => c.version === version && c.kind === kind)?.n ?? 0;
  const disk = releaseDiskUseMemo(db);
  return rows.map((r) => ({
    version: r.version,
    name: r.name,
    created: r.created,
    importedAt: r.importedAt,
    current: r.current,
    needsReimport: r.needsReimport,
    diskBytes: disk.get(r.version)?.bytes ?? 0,
    exclusiveBytes: disk.get(r.version)?.exclusiveBytes ?? 0,
    images: countOf(r.version, 'image'),
    charts: countOf(r.version, 'chart'),
    packs: countOf(r.version, 'pack'),
    files: countOf(r.version, 'file'),
  }));
}

/**
 * One page of releases, newest import first (ties: the higher version string first),
 * without their artifact lists. Throws AirgapError AG_BAD_REQUEST for a cursor this list
 * did not give.
 */
export function releaseSummaryPage(db: Db, query: { after?: string | undefined; limit: number }): Page<ReleaseSummary> {
  const [importedAt, version] = query.after === undefined ? [] : decodeCursor(query.after, 'releases', 2);
  const raw = db
    .prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE ? IS NULL OR (imported_at, version) < (?, ?) ORDER BY imported_at DESC, version DESC LIMIT ?`)
    .all(importedAt ?? null, importedAt ?? null, version ?? null, query.limit + 1) as RawRelease[];
  const items = summarize(db, raw.slice(0, query.limit).map(toRelease));
  const total = (db.prepare('SELECT COUNT(*) AS n FROM releases').get() as { n: number }).n;
  const last = items[items.length - 1];
  return { items, next: raw.length > query.limit && last ? encodeCursor('releases', [last.importedAt, last.version]) : null, total };
}

/** Release `version` without its artifact lists, or undefined when it is not on the box. */
export function releaseSummary(db: Db, version: string): ReleaseSummary | undefined {
  const row = getRelease(db, version);
  return row ? summarize(db, [row])[0] : undefined;
}
