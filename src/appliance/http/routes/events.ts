/** /api/v1/events: the event log. */
import type { FastifyInstance } from 'fastify';
import type { ConsoleOperations } from '../operations.js';
import { limitQuery, listOf, responses } from './schemas.js';

/** Adds GET /events (`?limit=`, default 100) to `api`. */
export function registerEventRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'events'>): void {
  api.get('/events', {
    schema: {
      tags: ['appliance'],
      querystring: limitQuery(100),
      response: responses(listOf('events')),
    },
  }, async (request) => ({ events: ops.events((request.query as { limit: number }).limit) }));
}
