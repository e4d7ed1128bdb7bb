/**
 * /api/v1 release maintenance: POST /releases/:version/delete, POST /gc, GET /diff and
 * GET /backup (docs/cli.md: the same operations as `airgap releases delete`, `airgap
 * gc`, `airgap diff` and `airgap backup`, recorded under the console user's name).
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { backupFileName } from '../../cli/backup-file-name.js';
import type { ConsoleOperations } from '../operations.js';
import { openObject, responses } from './schemas.js';

const versionParams = { type: 'object', properties: { version: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['version'] } as const;

/** Adds the maintenance routes to `api`. */
export function registerMaintenanceRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'deleteRelease' | 'collectGarbage' | 'diff' | 'backupTo' | 'recordEvent'>): void {
  api.post('/releases/:version/delete', { schema: { tags: ['maintenance'], params: versionParams, response: responses(openObject) } }, async (request) =>
    ops.deleteRelease((request.params as { version: string }).version, request.consoleUser!),
  );

  api.post('/gc', { schema: { tags: ['maintenance'], response: responses(openObject) } }, async (request) => ops.collectGarbage(request.consoleUser!));

  api.get('/diff', {
    schema: {
      tags: ['maintenance'],
      querystring: { type: 'object', properties: { from: { type: 'string', minLength: 1, maxLength: 128 }, to: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['from', 'to'], additionalProperties: false },
      response: responses(openObject),
    },
  }, async (request) => {
    const { from, to } = request.query as { from: string; to: string };
    return ops.diff(from, to);
  });

  // The state (no data): every password and the CA key, so only for the console account, and recorded.
  api.get('/backup', { schema: { tags: ['maintenance'] } }, async (request, reply) => {
    const body = new PassThrough();
    ops.backupTo(body, request.consoleUser!).catch((err: unknown) => {
      request.log.error({ err }, 'the backup download failed');
      body.destroy(err as Error);
    });
    return reply
      .type('application/x-tar')
      .header('content-disposition', `attachment; filename="${backupFileName(new Date())}"`)
      .header('cache-control', 'no-store')
      .send(body);
  });
}
