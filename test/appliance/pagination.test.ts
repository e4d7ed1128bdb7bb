/**
 * The console API's content lists at scale (issue 18), through `app.inject` on the real
 * HTTPS app and the daemon's real content lists (daemon/content-lists.ts) over a real
 * SQLite file seeded with 20 releases of 1,000 images each: page sizes, `next` chains
 * that visit every row once and in order, `total`, the `q` filter, the release selection,
 * release summaries without artifact lists, and the refusals (bad cursors, limits).
 */
import t from 'tap';
import { join } from 'node:path';
import { publicAppFor } from '../helpers/console-app.js';
import type { ConsoleOperations } from '../../src/appliance/http/api.js';
import { contentLists } from '../../src/appliance/daemon/content-lists.js';
import { hashPassword } from '../../src/appliance/security/credentials.js';
import { ensurePki } from '../../src/appliance/security/pki.js';
import { stateLayout } from '../../src/appliance/config/state-layout.js';
import { openDatabase } from '../../src/appliance/store/db.js';
import { createImport, finishImport, journalBlob, markStarted, setIdentity } from '../../src/appliance/store/imports.js';
import { deleteReleaseRows, insertRelease, releaseDiskUse, releaseSummaryPage } from '../../src/appliance/store/releases.js';
import { seedContent, seedImageTarget, seedVersion } from '../helpers/content-seed.js';
import { tempDir } from '../helpers/temp.js';

const RELEASES = 20;
const IMAGES = 1000;

interface ApiError { code: string; message: string; hint?: string }
interface Artifact { releaseVersion: string; kind: string; target: string; digest: string; size: number }
interface Summary { version: string; current: boolean; diskBytes: number; exclusiveBytes: number; images: number; charts: number; packs: number; files: number; [key: string]: unknown }
type ImagesPage = { images: Artifact[]; next: string | null; total: number };
type ReleasesPage = { current: string | null; releases: Summary[]; next: string | null; total: number };

const work = await tempDir(t, 'airgap-pagination-');
const layout = stateLayout(work);
const pki = await ensurePki(layout, ['127.0.0.1']);
const db = openDatabase(layout.database);
t.teardown(() => db.close());
const versions = seedContent(db, { releases: RELEASES, images: IMAGES });
const CURRENT = versions[versions.length - 1]!;

const PASSWORD = 'Console-Pa55word';
// Hashed once: the API remembers a verified basic auth header per password hash.
const PASSWORD_HASH = hashPassword(PASSWORD);
const unused = () => {
  throw new Error('not used by this test');
};
const ops: ConsoleOperations = {
  consoleAccount: () => ({ username: 'admin', passwordHash: PASSWORD_HASH }),
  consoleOrigins: () => ['https://10.0.0.5'],
  status: unused,
  connectionDetails: unused,
  caPem: () => pki.tls.caPem,
  ...contentLists(db),
  listImports: () => [],
  getImport: () => undefined,
  followImport: unused,
  queueUpload: unused,
  events: () => [],
  recordEvent: () => {},
  uploadsDir: layout.uploadsDir,
  freeBytes: async () => 1e12,
  maxUploadBytes: 1_000_000,
  deleteRelease: unused,
  collectGarbage: unused,
  diff: unused,
  backupTo: unused,
  nodeConfigFiles: () => [],
};
const app = await publicAppFor(layout, pki.tls, ops);
t.teardown(() => app.close());

const headers = { host: '10.0.0.5', authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
const get = (url: string) => app.inject({ url: `/api/v1${url}`, headers });
async function json<T>(url: string): Promise<T> {
  const r = await get(url);
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${r.body}`);
  return r.json<T>();
}

/** Follows `next` from the page of `path` (which has a query string) after `start` (the first page when absent) to the last; returns every page. */
async function chain<T extends { next: string | null }>(path: string, start?: string): Promise<T[]> {
  const pages: T[] = [];
  let after = start;
  do {
    const page: T = await json<T>(after === undefined ? path : `${path}&after=${encodeURIComponent(after)}`);
    pages.push(page);
    after = page.next ?? undefined;
  } while (after !== undefined && pages.length < 1000);
  return pages;
}

const byTarget = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

t.test('one release: default pages of 100, and next visits each of its 1,000 images once, in target order', async (t) => {
  const first = await json<ImagesPage>(`/images?release=${CURRENT}`);
  t.equal(first.images.length, 100, 'the default page is 100 rows');
  t.equal(first.total, IMAGES);
  t.type(first.next, 'string');
  const pages = await chain<ImagesPage>(`/images?release=${CURRENT}`);
  t.same(pages.map((p) => p.images.length), Array(10).fill(100), 'ten full pages');
  t.equal(pages[pages.length - 1]!.next, null, 'the last page has no next');
  t.ok(pages.every((p) => p.total === IMAGES), 'every page says the total');
  const seen = pages.flatMap((p) => p.images.map((a) => a.target));
  const expected = Array.from({ length: IMAGES }, (_, i) => seedImageTarget(i, RELEASES - 1)).sort(byTarget);
  t.same(seen, expected, 'each image once, in target order');
  t.ok(pages.every((p) => p.images.every((a) => a.releaseVersion === CURRENT && a.kind === 'image')));
});

t.test('every release (no release given, as before): each (target, release) once, in (target, release) order', async (t) => {
  const pages = await chain<ImagesPage>('/images?limit=1000');
  t.equal(pages.length, RELEASES, `${RELEASES} pages of 1,000`);
  t.ok(pages.every((p) => p.images.length === 1000 && p.total === RELEASES * IMAGES));
  const seen = pages.flatMap((p) => p.images.map((a) => `${a.target} ${a.releaseVersion}`));
  t.equal(new Set(seen).size, seen.length, 'no row twice');
  const expected = versions.flatMap((v, r) => Array.from({ length: IMAGES }, (_, i) => ({ target: seedImageTarget(i, r), version: v })))
    .sort((a, b) => byTarget(a.target, b.target) || byTarget(a.version, b.version))
    .map((a) => `${a.target} ${a.version}`);
  t.same(seen, expected, 'every row, in order; a target in many releases is ordered by release');
  // A page boundary inside one target's run of releases: the cursor keeps the release.
  const small = await chain<ImagesPage>('/images?limit=7&q=img-0000:');
  t.same(small.flatMap((p) => p.images.map((a) => a.releaseVersion)), [...versions].sort(byTarget), 'one target, 20 releases, pages of 7');
});

t.test('page sizes follow limit, 1 to 1000', async (t) => {
  for (const [limit, size] of [[1, 1], [37, 37], [1000, 1000]] as const) {
    const page = await json<ImagesPage>(`/images?release=${CURRENT}&limit=${limit}`);
    t.equal(page.images.length, size, `limit=${limit}`);
    t.equal(page.total, IMAGES);
  }
  const all = await json<ImagesPage>(`/images?release=${CURRENT}&limit=1000`);
  t.equal(all.next, null, 'a page that holds the rest has no next');
  for (const [route, count] of [['charts', 20], ['packs', 5], ['files', 200]] as const) {
    const page = await json<Record<string, unknown[]> & { total: number; next: string | null }>(`/${route}?release=${CURRENT}&limit=10`);
    t.equal(page[route]!.length, Math.min(10, count), route);
    t.equal(page.total, count, `${route} total`);
    t.equal(page.next === null, count <= 10, `${route} next`);
  }
});

t.test('q filters on the target in SQL, case-insensitive, literally (no wildcards), with total and paging', async (t) => {
  const one = await json<ImagesPage>(`/images?release=${CURRENT}&q=IMG-0042`);
  t.same(one.images.map((a) => a.target), ['team-2/img-0042:stable']);
  t.equal(one.total, 1);
  t.equal(one.next, null);
  const team = await chain<ImagesPage>(`/images?release=${CURRENT}&q=team-3/&limit=30`);
  t.same(team.map((p) => p.images.length), [30, 30, 30, 10]);
  t.ok(team.every((p) => p.total === 100));
  t.same(team.flatMap((p) => p.images.map((a) => a.target)), Array.from({ length: IMAGES }, (_, i) => seedImageTarget(i, RELEASES - 1)).filter((x) => x.startsWith('team-3/')).sort(byTarget));
  t.equal((await json<ImagesPage>('/images?q=team-3/')).total, 100 * RELEASES, 'every release');
  t.equal((await json<ImagesPage>(`/images?q=:${seedVersion(4)}`)).total, IMAGES / 10, 'the tags of one release');
  for (const q of ['%', '_', "'", 'nothing-has-this']) t.equal((await json<ImagesPage>(`/images?q=${encodeURIComponent(q)}`)).total, 0, `q=${q}`);
  const empty = await json<ImagesPage>(`/images?release=${CURRENT}&q=`);
  t.equal(empty.total, IMAGES, 'an empty q filters nothing');
});

t.test('release selects one release; an unknown one is 404', async (t) => {
  const page = await json<ImagesPage>(`/images?release=${seedVersion(3)}&limit=1000`);
  t.equal(page.total, IMAGES);
  t.ok(page.images.every((a) => a.releaseVersion === seedVersion(3)));
  t.equal(page.images.filter((a) => a.target.endsWith(`:${seedVersion(3)}`)).length, IMAGES / 10, 'its own tags');
  const files = await json<{ files: Artifact[]; total: number }>(`/files?release=${seedVersion(3)}&q=f-01`);
  t.equal(files.total, 10);
  const missing = await get('/images?release=9.9.9');
  t.equal(missing.statusCode, 404);
  t.equal(missing.json<ApiError>().code, 'AG_NOT_FOUND');
  t.match(missing.json<ApiError>().message, /there is no release 9\.9\.9/);
});

t.test('releases: newest first, paged, without artifact lists, with counts, disk use and the current one', async (t) => {
  const page = await json<ReleasesPage>('/releases');
  t.equal(page.current, CURRENT);
  t.equal(page.total, RELEASES);
  t.equal(page.next, null, 'the default page of 50 holds all 20');
  t.same(page.releases.map((r) => r.version), [...versions].reverse(), 'newest import first');
  const top = page.releases[0]!;
  t.same(Object.keys(top).sort(), ['charts', 'created', 'current', 'diskBytes', 'exclusiveBytes', 'files', 'images', 'importedAt', 'name', 'needsReimport', 'packs', 'version']);
  t.match(top, { version: CURRENT, current: true, needsReimport: false, images: IMAGES, charts: 20, packs: 5, files: 200 });
  t.ok(page.releases.slice(1).every((r) => !r.current));
  const disk = releaseDiskUse(db);
  t.ok(page.releases.every((r) => r.diskBytes === disk.get(r.version)!.bytes && r.exclusiveBytes === disk.get(r.version)!.exclusiveBytes), 'disk use as releaseDiskUse computes it');
  t.ok(top.diskBytes > top.exclusiveBytes && top.exclusiveBytes > 0);

  const pages = await chain<ReleasesPage>('/releases?limit=7');
  t.same(pages.map((p) => p.releases.length), [7, 7, 6]);
  t.same(pages.flatMap((p) => p.releases.map((r) => r.version)), [...versions].reverse(), 'the chain visits each release once, newest first');
  t.ok(pages.every((p) => p.current === CURRENT && p.total === RELEASES));

  const one = await json<Summary>(`/releases/${seedVersion(3)}`);
  t.match(one, { version: seedVersion(3), current: false, images: IMAGES, files: 200 });
  const missing = await get('/releases/9.9.9');
  t.equal(missing.statusCode, 404);
  t.equal(missing.json<ApiError>().code, 'AG_NOT_FOUND');
});

t.test('a cursor the list did not give is 400 with a clear error', async (t) => {
  const charts = await json<{ next: string }>(`/charts?release=${CURRENT}&limit=1`);
  const releases = await json<ReleasesPage>('/releases?limit=1');
  const forged = Buffer.from(JSON.stringify(['images', 1, 2])).toString('base64url');
  for (const [url, after] of [
    ['/images', 'not-a-cursor'],
    ['/images', '!!!'],
    ['/images', forged],
    ['/images', charts.next],
    ['/images', releases.next!],
    ['/releases', charts.next],
    ['/releases', 'e30'],
  ] as const) {
    const r = await get(`${url}?after=${encodeURIComponent(after)}`);
    t.equal(r.statusCode, 400, `${url} after=${after}`);
    t.equal(r.json<ApiError>().code, 'AG_BAD_REQUEST');
    t.match(r.json<ApiError>().message, /cursor .* is not one the \w+ list gave/);
    t.match(r.json<ApiError>().hint, /'next' of the page before/);
  }
  const empty = await get('/images?after=');
  t.equal(empty.statusCode, 400, 'an empty cursor');
});

t.test('limit out of 1..1000, or an unknown parameter, is 400', async (t) => {
  for (const path of ['/images', '/charts', '/packs', '/files', '/releases']) {
    for (const bad of ['limit=0', 'limit=1001', 'limit=-5', 'limit=abc', 'limit=2.5', 'offset=100']) {
      const r = await get(`${path}?${bad}`);
      t.equal(r.statusCode, 400, `${path}?${bad}`);
      t.equal(r.json<ApiError>().code, 'AG_BAD_REQUEST');
    }
  }
  t.match((await get('/images?limit=0')).json<ApiError>().message, /limit must be >= 1/);
  t.match((await get('/releases?limit=1001')).json<ApiError>().message, /limit must be <= 1000/);
  t.equal((await get('/releases?release=1.0.0')).statusCode, 400, 'releases take no release filter');
});

t.test('a cursor stays good when rows go: the chain goes on after a delete, without repeats', async (t) => {
  const first = await json<ImagesPage>('/images?limit=100');
  t.ok(deleteReleaseRows(db, seedVersion(0)), 'an older release is deleted between two pages');
  const rest = await chain<ImagesPage>('/images?limit=1000', first.next!);
  const seen = [...first.images, ...rest.flatMap((p) => p.images)].map((a) => `${a.target} ${a.releaseVersion}`);
  t.equal(new Set(seen).size, seen.length, 'no row twice');
  t.equal(rest[0]!.total, (RELEASES - 1) * IMAGES, 'the total follows');
  t.notOk(rest.some((p) => p.images.some((a) => a.releaseVersion === seedVersion(0))), 'the deleted release is gone from later pages');
  t.equal((await json<ReleasesPage>('/releases')).total, RELEASES - 1);
});

t.test('release disk use is computed again when the releases change', async (t) => {
  const small = openDatabase(join(await tempDir(t, 'airgap-pagination-disk-'), 'airgap.db'));
  t.teardown(() => small.close());
  const add = (version: string, importedAt: string) => {
    const job = createImport(small, { file: `/${version}.bin`, source: 'cli', actor: 'cli', options: {} });
    markStarted(small, job.id, false);
    setIdentity(small, job.id, { name: 'demo', version, payloadSha256: 'p' });
    journalBlob(small, job.id, { registry: 'images', repository: 'app', digest: 'sha256:shared', size: 1000, action: 'pushed' });
    insertRelease(small, { version, name: 'demo', created: importedAt, payloadSha256: 'p', tocSha256: 't', keyId: null, importId: job.id, importedAt }, [], true);
    finishImport(small, job.id, 'imported', {});
  };
  add('1.0.0', '2026-01-01T00:00:00Z');
  add('2.0.0', '2026-01-02T00:00:00Z');
  const both = releaseSummaryPage(small, { limit: 10 }).items;
  t.same(both.map((r) => [r.version, r.diskBytes, r.exclusiveBytes]), [['2.0.0', 1000, 0], ['1.0.0', 1000, 0]], 'a shared blob is nobody\'s to free');
  deleteReleaseRows(small, '1.0.0');
  t.same(releaseSummaryPage(small, { limit: 10 }).items.map((r) => [r.version, r.diskBytes, r.exclusiveBytes]), [['2.0.0', 1000, 1000]], 'once alone, its blob is its own');
});
