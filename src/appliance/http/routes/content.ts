/** /api/v1/releases and the artifact lists: /images, /charts, /packs, /files. */
import type { FastifyInstance } from 'fastify';
import type { ConsoleOperations } from '../operations.js';
import { listOf, openObject, responses } from './schemas.js';

/** Adds GET /releases, /images, /charts, /packs and /files to `api`. */
export function registerContentRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'releases' | 'artifacts'>): void {
  api.get('/releases', { schema: { tags: ['content'], response: responses(openObject) } }, async () => ops.releases());
  for (const [route, kind] of [['images', 'image'], ['charts', 'chart'], ['packs', 'pack'], ['files', 'file']] as const) {
    api.get(`/${route}`, { schema: { tags: ['content'], response: responses(listOf(route)) } }, async () => ({ [route]: ops.artifacts(kind) }));
  }
}
