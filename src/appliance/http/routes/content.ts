/**
 * /api/v1/releases and the artifact lists /images, /charts, /packs and /files, a page at a
 * time (keyset paging: `next` is the cursor of the page after, `total` the rows that match).
 * docs/cli.md, "The console API", describes the queries and answers.
 */
import type { FastifyInstance } from 'fastify';
import type { ArtifactKind } from '../../store/releases.js';
import type { ConsoleOperations } from '../operations.js';
import { ApiError } from '../api-error.js';
import { responses } from './schemas.js';

/** `?limit=` of a paged list: 1 to 1000, `fallback` when absent. */
const limitProperty = (fallback: number) => ({ type: 'integer', minimum: 1, maximum: 1000, default: fallback }) as const;
/** `?after=`: the `next` of the page before. */
const afterProperty = { type: 'string', minLength: 1, maxLength: 16384 } as const;
const versionProperty = { type: 'string', minLength: 1, maxLength: 128 } as const;
/** `next` and `total` of every page. */
const pageProperties = { next: { type: ['string', 'null'] }, total: { type: 'integer' } } as const;

/** A release without its artifact lists (store/releases.ts, ReleaseSummary). */
const releaseSummary = {
  type: 'object',
  properties: {
    version: { type: 'string' },
    name: { type: 'string' },
    created: { type: 'string' },
    importedAt: { type: 'string' },
    current: { type: 'boolean' },
    needsReimport: { type: 'boolean' },
    diskBytes: { type: 'integer' },
    exclusiveBytes: { type: 'integer' },
    images: { type: 'integer' },
    charts: { type: 'integer' },
    packs: { type: 'integer' },
    files: { type: 'integer' },
  },
  required: ['version', 'name', 'created', 'importedAt', 'current', 'needsReimport', 'diskBytes', 'exclusiveBytes', 'images', 'charts', 'packs', 'files'],
} as const;

/** An artifact row (store/releases.ts, ArtifactRow). */
const artifact = {
  type: 'object',
  properties: {
    releaseVersion: { type: 'string' },
    kind: { type: 'string' },
    target: { type: 'string' },
    digest: { type: 'string' },
    size: { type: 'integer' },
    mediaType: { type: ['string', 'null'] },
    platforms: { type: ['array', 'null'], items: { type: 'string' } },
  },
  required: ['releaseVersion', 'kind', 'target', 'digest', 'size', 'mediaType', 'platforms'],
} as const;

const LISTS = [['images', 'image'], ['charts', 'chart'], ['packs', 'pack'], ['files', 'file']] as const satisfies ReadonlyArray<readonly [string, ArtifactKind]>;

/**
 * Adds to `api`: GET /releases (`?limit=` 1–1000, default 50; `?after=`), newest first,
 * without artifact lists; GET /releases/:version, one of them; and GET /images, /charts,
 * /packs and /files (`?limit=` 1–1000, default 100; `?after=`; `?release=` one release,
 * every release when absent; `?q=` a substring of the target), in (target, release) order.
 */
export function registerContentRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'releases' | 'release' | 'artifacts'>): void {
  api.get('/releases', {
    schema: {
      tags: ['content'],
      querystring: { type: 'object', properties: { limit: limitProperty(50), after: afterProperty }, additionalProperties: false },
      response: responses({
        type: 'object',
        properties: { current: { type: ['string', 'null'] }, releases: { type: 'array', items: releaseSummary }, ...pageProperties },
        required: ['current', 'releases', 'next', 'total'],
      }),
    },
  }, async (request) => {
    const query = request.query as { limit: number; after?: string };
    const page = ops.releases({ limit: query.limit, after: query.after });
    return { current: page.current, releases: page.items, next: page.next, total: page.total };
  });

  api.get('/releases/:version', {
    schema: {
      tags: ['content'],
      params: { type: 'object', properties: { version: versionProperty }, required: ['version'] },
      response: responses(releaseSummary),
    },
  }, async (request) => {
    const { version } = request.params as { version: string };
    const release = ops.release(version);
    if (!release) throw new ApiError(404, 'AG_NOT_FOUND', `there is no release ${version} on the box`, 'GET /api/v1/releases lists the releases');
    return release;
  });

  for (const [route, kind] of LISTS) {
    api.get(`/${route}`, {
      schema: {
        tags: ['content'],
        querystring: {
          type: 'object',
          properties: { limit: limitProperty(100), after: afterProperty, release: versionProperty, q: { type: 'string', maxLength: 256 } },
          additionalProperties: false,
        },
        response: responses({ type: 'object', properties: { [route]: { type: 'array', items: artifact }, ...pageProperties }, required: [route, 'next', 'total'] }),
      },
    }, async (request) => {
      const query = request.query as { limit: number; after?: string; release?: string; q?: string };
      const page = ops.artifacts({ kind, limit: query.limit, after: query.after, version: query.release, q: query.q || undefined });
      return { [route]: page.items, next: page.next, total: page.total };
    });
  }
}
