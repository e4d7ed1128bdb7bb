/** Releases on the box and the artifacts each one brought. */
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
  import_id AS importId, imported_at AS importedAt, current`;

function toRelease(raw: Omit<ReleaseRow, 'current'> & { current: number }): ReleaseRow {
  return { ...raw, current: raw.current === 1 };
}

export function getRelease(db: Db, version: string): ReleaseRow | undefined {
  const raw = db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE version = ?`).get(version) as (Omit<ReleaseRow, 'current'> & { current: number }) | undefined;
  return raw ? toRelease(raw) : undefined;
}

export function currentRelease(db: Db): ReleaseRow | undefined {
  const raw = db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE current = 1`).get() as (Omit<ReleaseRow, 'current'> & { current: number }) | undefined;
  return raw ? toRelease(raw) : undefined;
}

export function listReleases(db: Db): ReleaseRow[] {
  return (db.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases ORDER BY imported_at`).all() as Array<Omit<ReleaseRow, 'current'> & { current: number }>).map(toRelease);
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
 * Removes release `version` and its artifact rows, in one transaction. The current
 * release is never removed: returns false for it (and for a version not recorded).
 */
export function deleteReleaseRows(db: Db, version: string): boolean {
  return db.transaction(() => {
    const row = db.prepare('SELECT current FROM releases WHERE version = ?').get(version) as { current: number } | undefined;
    if (!row || row.current === 1) return false;
    db.prepare('DELETE FROM artifacts WHERE release_version = ?').run(version);
    db.prepare('DELETE FROM releases WHERE version = ?').run(version);
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
export function insertRelease(db: Db, release: Omit<ReleaseRow, 'current'>, artifacts: Iterable<Omit<ArtifactRow, 'releaseVersion'>>, makeCurrent: boolean): void {
  if (makeCurrent) db.prepare('UPDATE releases SET current = 0 WHERE current = 1').run();
  db.prepare(
    'INSERT INTO releases (version, name, created, payload_sha256, toc_sha256, key_id, import_id, imported_at, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ).run(release.version, release.name, release.created, release.payloadSha256, release.tocSha256, release.keyId, release.importId, release.importedAt, makeCurrent ? 1 : 0);
  const insert = db.prepare('INSERT INTO artifacts (release_version, kind, target, digest, size, media_type, platforms) VALUES (?, ?, ?, ?, ?, ?, ?)');
  for (const a of artifacts) insert.run(release.version, a.kind, a.target, a.digest, a.size, a.mediaType, a.platforms ? JSON.stringify(a.platforms) : null);
}
