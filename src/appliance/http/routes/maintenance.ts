/**
 * /api/v1 release maintenance: POST /releases/:version/delete, POST /gc, GET /diff,
 * POST /backup and GET /node-config (docs/cli.md: the same operations as `airgap releases delete`, `airgap
 * gc`, `airgap diff` and `airgap backup`, recorded under the console user's name).
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { AirgapError } from '../../../kit/errors.js';
import { verifyPasswordAsync } from '../../security/credentials.js';
import { nodeConfigTar } from '../../daemon/node-config.js';
import { backupFileName } from '../../cli/backup-file-name.js';
import type { ConsoleOperations } from '../operations.js';
import { openObject, responses } from './schemas.js';

const versionParams = { type: 'object', properties: { version: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['version'] } as const;

/** Adds the maintenance routes to `api`. */
export function registerMaintenanceRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'deleteRelease' | 'collectGarbage' | 'diff' | 'backupTo' | 'consoleAccount' | 'nodeConfigFiles' | 'recordEvent'>): void {
  api.post('/releases/:version/delete', { schema: { tags: ['maintenance'], params: versionParams, response: responses(openObject) } }, async (request) =>
    ops.deleteRelease((request.params as { version: string }).version, request.consoleUser!),
  );

  // The files of `airgap node-config` as a tar: the pull accounts' passwords are in it, so the download is recorded.
  api.get('/node-config', { schema: { tags: ['maintenance'] } }, async (request, reply) => {
    ops.recordEvent(request.consoleUser!, 'console.node_config_downloaded', `${request.consoleUser} downloaded the node configuration from ${request.ip}`, { client: request.ip });
    return reply.type('application/x-tar').header('content-disposition', 'attachment; filename="airgap-node-config.tar"').send(await nodeConfigTar(ops.nodeConfigFiles()));
  });

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

  // The state (no data) holds every password and the CA key: a POST (so the session's CSRF
  // token is needed), with the console password typed again, a few wrong ones a minute.
  const failures: number[] = [];
  api.post('/backup', {
    schema: {
      tags: ['maintenance'],
      body: { type: 'object', properties: { password: { type: 'string', minLength: 1, maxLength: 1024 } }, required: ['password'], additionalProperties: false },
    },
  }, async (request, reply) => {
    const now = Date.now();
    while (failures.length && failures[0]! < now - 60_000) failures.shift();
    if (failures.length >= 5) throw new AirgapError('AG_TOO_MANY_LOGINS', 'too many wrong passwords for a backup; wait a minute');
    if (!(await verifyPasswordAsync((request.body as { password: string }).password, ops.consoleAccount().passwordHash))) {
      failures.push(now);
      throw new AirgapError('AG_PASSWORD', 'the console password is wrong', { hint: 'type the password you log in with' });
    }
    const body = new PassThrough();
    ops.backupTo(body, request.consoleUser!).catch((err: unknown) => {
      request.log.error({ err }, 'the backup download failed');
      body.destroy(err as Error);
    });
    return reply
      .type('application/x-tar')
      .header('content-disposition', `attachment; filename="${backupFileName(new Date())}"`)
      .send(body);
  });
}
