/**
 * Import stage "commit": the release and every artifact are recorded in one SQLite
 * transaction with the import's end; then `/repo/releases.json` is rewritten (temp,
 * fsync, rename) so downstream installers can discover the release.
 */
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { writeFileAtomic } from '../../kit/fs.js';
import type { OpenedPayload } from '../../format/reader.js';
import type { Db } from '../store/db.js';
import { finishImport } from '../store/imports.js';
import { artifactPage, clearNeedsReimport, currentRelease, insertRelease, listArtifacts, listReleases, makeCurrent, releaseDiskUse, type ArtifactRow } from '../store/releases.js';
import type { TransferPlan } from '../../transfer/plan.js';

/** Name of the release list at the top of the repository. */
export const RELEASES_JSON = 'releases.json';

/**
 * Records the release (unless it is there already) and finishes the import, in one
 * transaction. `makeCurrent`: the release becomes the current one.
 */
export function commitRelease(db: Db, args: { importId: number; opened: OpenedPayload; plan: TransferPlan; makeCurrent: boolean; alreadyRecorded: boolean; result: unknown }): void {
  const { opened, plan } = args;
  db.transaction(() => {
    if (args.alreadyRecorded) {
      if (args.makeCurrent) makeCurrent(db, opened.toc.version);
      clearNeedsReimport(db, opened.toc.version);
    } else {
      // A generator, not an array: 100,000 files are inserted one by one, never all in memory twice.
      const sources = new Map(opened.toc.images.map((i) => [i.target, i.source]));
      function* artifacts(): Generator<Omit<ArtifactRow, 'releaseVersion'> & { source?: string | null }> {
        for (const a of plan.artifacts) yield { kind: a.kind, target: a.target, digest: a.digest, size: a.size, mediaType: a.mediaType, platforms: a.kind === 'image' ? a.platforms : null, source: a.kind === 'image' ? (sources.get(a.target) ?? null) : null };
        for (const f of plan.files) yield { kind: 'file', target: f.target, digest: `sha256:${f.sha256}`, size: f.size, mediaType: null, platforms: null };
      }
      insertRelease(
        db,
        {
          version: opened.toc.version,
          name: opened.toc.name,
          created: opened.toc.created,
          payloadSha256: opened.header.payloadSha256,
          tocSha256: opened.header.tocSha256,
          keyId: opened.signature.status === 'verified' ? opened.signature.keyId : null,
          importId: args.importId,
          importedAt: new Date().toISOString(),
        },
        artifacts(),
        args.makeCurrent,
      );
    }
    finishImport(db, args.importId, 'imported', args.result);
  })();
}

/**
 * The document at `/repo/releases.json`: installed versions, the current one, and each
 * release's files (paths relative to `/repo/`), images, charts and packs. With
 * `files: false` each release has `fileCount` instead of its files (the admin API's
 * `GET /v1/releases?files=false`: no 100,000-row list to count them).
 */
export function releasesDocument(db: Db, options: { files?: boolean } = {}): unknown {
  const current = currentRelease(db);
  const withFiles = options.files !== false;
  const disk = releaseDiskUse(db);
  return {
    current: current?.version ?? null,
    releases: listReleases(db).map((r) => {
      const artifacts = listArtifacts(db, { version: r.version, files: withFiles });
      const of = (kind: ArtifactRow['kind']) => artifacts.filter((a) => a.kind === kind);
      return {
        version: r.version,
        name: r.name,
        created: r.created,
        importedAt: r.importedAt,
        current: r.current,
        tocSha256: r.tocSha256,
        needsReimport: r.needsReimport,
        diskBytes: disk.get(r.version)?.bytes ?? 0,
        exclusiveBytes: disk.get(r.version)?.exclusiveBytes ?? 0,
        ...(withFiles
          ? { files: of('file').map((f) => ({ path: `${r.version}/${f.target}`, size: f.size, sha256: f.digest.replace(/^sha256:/, '') })) }
          : { fileCount: countFiles(db, r.version) }),
        images: of('image').map((a) => ({ target: a.target, digest: a.digest })),
        charts: of('chart').map((a) => ({ target: a.target, digest: a.digest })),
        packs: of('pack').map((a) => ({ target: a.target, digest: a.digest })),
      };
    }),
  };
}

function countFiles(db: Db, version: string): number {
  return (db.prepare("SELECT COUNT(*) AS n FROM artifacts WHERE release_version = ? AND kind = 'file'").get(version) as { n: number }).n;
}

/** Files read from the database per page while releases.json is written. */
const FILES_PER_PAGE = 5000;

/** `value` as JSON.stringify(value, null, 2) writes it `depth` levels deep (lines after the first indented). */
function jsonAt(value: unknown, depth: number): string {
  return JSON.stringify(value, null, 2).replace(/\n/g, `\n${'  '.repeat(depth)}`);
}

/**
 * The bytes of `releasesDocument(db)` as `JSON.stringify(doc, null, 2)` writes them, made
 * a page of files at a time with a turn of the event loop between pages: a release of
 * 100,000 files is neither held in memory whole nor a stall of the daemon.
 */
async function* releasesJsonChunks(db: Db): AsyncGenerator<string> {
  const releases = listReleases(db);
  const disk = releaseDiskUse(db);
  yield `{\n  "current": ${JSON.stringify(currentRelease(db)?.version ?? null)},\n  "releases": [`;
  for (const [i, r] of releases.entries()) {
    const head = {
      version: r.version, name: r.name, created: r.created, importedAt: r.importedAt, current: r.current, tocSha256: r.tocSha256,
      needsReimport: r.needsReimport, diskBytes: disk.get(r.version)?.bytes ?? 0, exclusiveBytes: disk.get(r.version)?.exclusiveBytes ?? 0,
    };
    yield `${i ? ',' : ''}\n    {\n${Object.entries(head).map(([k, v]) => `      ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')},\n      "files": `;
    let after = '';
    let any = false;
    for (;;) {
      const page = artifactPage(db, r.version, 'file', after, FILES_PER_PAGE);
      if (!page.length) break;
      let chunk = any ? '' : '[';
      for (const f of page) {
        chunk += `${any ? ',' : ''}\n        ${jsonAt({ path: `${r.version}/${f.target}`, size: f.size, sha256: f.digest.replace(/^sha256:/, '') }, 4)}`;
        any = true;
      }
      after = page[page.length - 1]!.target;
      yield chunk;
      await setImmediate();
    }
    yield any ? '\n      ]' : '[]';
    const artifacts = listArtifacts(db, { version: r.version, files: false });
    for (const [key, kind] of [['images', 'image'], ['charts', 'chart'], ['packs', 'pack']] as const) {
      yield `,\n      "${key}": ${jsonAt(artifacts.filter((a) => a.kind === kind).map((a) => ({ target: a.target, digest: a.digest })), 3)}`;
    }
    yield '\n    }';
  }
  yield releases.length ? '\n  ]\n}\n' : ']\n}\n';
}

/** Rewrites `<repoDir>/releases.json` from the database (streamed; the same bytes as `releasesDocument` with two-space indents). */
export async function writeReleasesJson(db: Db, repoDir: string): Promise<void> {
  await writeFileAtomic(join(repoDir, RELEASES_JSON), releasesJsonChunks(db), 0o644);
}
