/**
 * The console API's lists at scale (issue 18: every list answers in under 200 ms with
 * 1,000 images and 20 releases). Seeds a fresh database in a temp folder with 20 releases
 * of 1,000 images each (test/helpers/content-seed.ts: stable targets recur in every
 * release, so the every-release image list holds 20,000 rows), serves the real console
 * API (HTTPS app, daemon/content-lists.ts) on 127.0.0.1, and asks each list, one request
 * at a time over a keep-alive connection with basic auth, for its first page and for a
 * deep one (reached by following `next` beforehand): median and p95 in ms.
 *
 * Also reports what the first releases page after an import or a delete costs more: the
 * release disk use query, memoized until the releases change (store/releases.ts).
 *
 * Alone: `node dist/bench/api.js` after `npm run build` (or `npx tsx bench/api.ts`); it
 * prints the JSON. `apiBench()` returns the same object.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { publicAppFor } from '../test/helpers/console-app.js';
import type { ConsoleOperations } from '../src/appliance/http/operations.js';
import { contentLists } from '../src/appliance/daemon/content-lists.js';
import { stateLayout } from '../src/appliance/config/state-layout.js';
import { hashPassword } from '../src/appliance/security/credentials.js';
import { ensurePki } from '../src/appliance/security/pki.js';
import { openDatabase } from '../src/appliance/store/db.js';
import { releaseDiskUse } from '../src/appliance/store/releases.js';
import { seedContent } from '../test/helpers/content-seed.js';

/** Median and 95th percentile of one request, ms. */
export interface Latency {
  medianMs: number;
  p95Ms: number;
  /** Rows in the answer. */
  rows: number;
}

export interface ApiBenchResult {
  releases: number;
  imagesPerRelease: number;
  /** Requests timed per row of `lists`. */
  requests: number;
  /** Seconds the seeding took (not part of any figure). */
  seedSeconds: number;
  /** Per request: `<path> first` (the first page) and `<path> deep` (a page far down its `next` chain). */
  lists: Record<string, Latency>;
  /** The release disk use query alone, ms (median of 5): added to the first releases page after the releases change. */
  diskUseQueryMs: number;
}

const PASSWORD = 'bench-Pa55word';

const round = (ms: number) => Math.round(ms * 100) / 100;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/**
 * Seeds `releases` releases of `images` images, serves the console API on 127.0.0.1 and
 * times `requests` GETs of each list's first and deep page. Removes its temp folder.
 */
export async function apiBench(options: { releases?: number; images?: number; requests?: number } = {}): Promise<ApiBenchResult> {
  const releases = options.releases ?? 20;
  const images = options.images ?? 1000;
  const requests = options.requests ?? 50;
  const dir = await mkdtemp(join(tmpdir(), 'airgap-bench-api-'));
  try {
    const layout = stateLayout(dir);
    const pki = await ensurePki(layout, ['127.0.0.1']);
    const db = openDatabase(layout.database);
    const seedStart = performance.now();
    const versions = seedContent(db, { releases, images });
    const seedSeconds = (performance.now() - seedStart) / 1000;
    const passwordHash = hashPassword(PASSWORD);
    const unused = () => {
      throw new Error('not used by the bench');
    };
    const ops: ConsoleOperations = {
      consoleAccount: () => ({ username: 'admin', passwordHash }),
      consoleOrigins: () => ['https://127.0.0.1'],
      status: unused, connectionDetails: unused, caPem: () => pki.tls.caPem,
      ...contentLists(db),
      listImports: () => [], getImport: () => undefined, followImport: unused, queueUpload: unused,
      events: () => [], recordEvent: () => {}, uploadsDir: layout.uploadsDir, freeBytes: async () => 1e12, maxUploadBytes: 1,
      deleteRelease: unused, collectGarbage: unused, diff: unused, backupTo: unused, nodeConfigFiles: () => [],
    };
    const app = await publicAppFor(layout, pki.tls, ops);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.tls.caPem });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.server.address() as AddressInfo;
      const authorization = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
      /** One GET of /api/v1`path`: its JSON and how long it took, ms. */
      const get = (path: string) => new Promise<{ body: Record<string, unknown>; ms: number }>((resolve, reject) => {
        const start = performance.now();
        const req = request({ host: '127.0.0.1', port, path: `/api/v1${path}`, agent, headers: { authorization } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const ms = performance.now() - start;
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode} ${text}`));
            else resolve({ body: JSON.parse(text) as Record<string, unknown>, ms });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      /** The cursor `pages` pages down the chain of `path` (which has a query string). */
      const deepCursor = async (path: string, pages: number) => {
        let after: string | undefined;
        for (let i = 0; i < pages; i++) {
          const next = (await get(after === undefined ? path : `${path}&after=${encodeURIComponent(after)}`)).body.next as string | null;
          if (next === null) break;
          after = next;
        }
        return after;
      };
      const time = async (path: string, key: string): Promise<Latency> => {
        await get(path); // warm: the statement cache, the verified auth header
        const samples: number[] = [];
        let rows = 0;
        for (let i = 0; i < requests; i++) {
          const { body, ms } = await get(path);
          samples.push(ms);
          rows = (body[key] as unknown[]).length;
        }
        samples.sort((a, b) => a - b);
        return { medianMs: round(percentile(samples, 0.5)), p95Ms: round(percentile(samples, 0.95)), rows };
      };

      const current = versions[versions.length - 1]!;
      const lists: Record<string, Latency> = {};
      const cases: Array<[label: string, path: string, key: string, deepPages: number]> = [
        ['/releases', '/releases?limit=50', 'releases', 0],
        ['/releases?limit=5', '/releases?limit=5', 'releases', 3],
        ['/images (every release)', '/images?limit=100', 'images', Math.floor((releases * images) / 100) - 2],
        [`/images?release=${current}`, `/images?limit=100&release=${current}`, 'images', Math.floor(images / 100) - 1],
        ['/images?q=team-3/ (every release)', '/images?limit=100&q=team-3/', 'images', Math.floor((releases * images) / 1000) - 1],
        ['/charts', '/charts?limit=100', 'charts', 3],
        ['/packs', '/packs?limit=100', 'packs', 0],
        ['/files', '/files?limit=100', 'files', Math.floor((releases * 200) / 100) - 2],
        ['/images?limit=1000 (every release)', '/images?limit=1000', 'images', releases - 2],
      ];
      for (const [label, path, key, deepPages] of cases) {
        lists[`${label} first`] = await time(path, key);
        const after = deepPages > 0 ? await deepCursor(path, deepPages) : undefined;
        if (after !== undefined) lists[`${label} deep (page ${deepPages + 1})`] = await time(`${path}&after=${encodeURIComponent(after)}`, key);
      }
      const disk: number[] = [];
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        releaseDiskUse(db);
        disk.push(performance.now() - start);
      }
      disk.sort((a, b) => a - b);
      return { releases, imagesPerRelease: images, requests, seedSeconds: round(seedSeconds), lists, diskUseQueryMs: round(percentile(disk, 0.5)) };
    } finally {
      agent.destroy();
      await app.close();
      db.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await apiBench(), null, 2));
}
