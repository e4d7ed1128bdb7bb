/**
 * /api/v1/imports: the list, one import, its progress as server-sent events, and
 * starting one from a finished upload or from a .bin sent as the request body.
 */
import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { AirgapError } from '../../../kit/errors.js';
import { ApiError } from '../api-error.js';
import type { ConsoleOperations } from '../operations.js';
import type { UploadStore } from '../upload-store.js';
import { importIdParams, limitQuery, listOf, openObject, responses } from './schemas.js';
import { isOctetStream, uploadCall } from './uploads.js';

/** Adds GET /imports, GET /imports/:id, GET /imports/:id/events and POST /imports to `api`. */
export function registerImportRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'listImports' | 'getImport' | 'followImport' | 'queueUpload'>, uploads: UploadStore): void {
  api.get('/imports', {
    schema: {
      tags: ['imports'],
      querystring: limitQuery(50),
      response: responses(listOf('imports')),
    },
  }, async (request) => ({ imports: ops.listImports((request.query as { limit: number }).limit) }));

  api.get('/imports/:id', { schema: { tags: ['imports'], params: importIdParams, response: responses(openObject) } }, async (request) => {
    const { id } = request.params as { id: number };
    const row = ops.getImport(id);
    if (!row) throw new AirgapError('AG_NOT_FOUND', `there is no import ${id}`);
    return row;
  });

  // Server-sent events: `update` while queued or running, one `done` at the end.
  api.get('/imports/:id/events', { schema: { tags: ['imports'], params: importIdParams } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    if (!ops.getImport(id)) throw new AirgapError('AG_NOT_FOUND', `there is no import ${id}`);
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (event: string, data: unknown) => reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const unsubscribe = ops.followImport(id, (u) => void (reply.raw.writableNeedDrain || send('update', u)), (row) => {
      send('done', row);
      reply.raw.end();
    });
    request.raw.on('close', unsubscribe);
  });

  api.post('/imports', {
    schema: {
      tags: ['imports'],
      querystring: { type: 'object', properties: { name: { type: 'string' }, allowDowngrade: { type: 'boolean', default: false } }, additionalProperties: false },
      response: responses({ type: 'object', properties: { import: openObject, queuePosition: { type: 'integer' } } }, 202),
    },
  }, async (request, reply) => {
    const query = request.query as { name?: string; allowDowngrade: boolean };
    let uploadId: string;
    if (isOctetStream(request.headers['content-type'])) {
      // One request: the body is the whole .bin.
      const size = Number(request.headers['content-length']);
      if (!Number.isSafeInteger(size) || size <= 0) throw new ApiError(411, 'AG_UPLOAD_LENGTH', 'send the .bin with its Content-Length, or use the chunked /uploads');
      uploadId = (await uploadCall(() => uploads.open(query.name ?? 'upload.bin', size))).id;
      try {
        await uploadCall(() => uploads.append(uploadId, request.body as Readable));
      } catch (err) {
        await uploads.discard(uploadId);
        throw err;
      }
    } else {
      const body = (request.body ?? {}) as { uploadId?: unknown; allowDowngrade?: unknown };
      if (typeof body.uploadId !== 'string') throw new ApiError(400, 'AG_BAD_REQUEST', 'send {"uploadId": …} of a finished upload, or the .bin itself as application/octet-stream');
      uploadId = body.uploadId;
      if (body.allowDowngrade === true) query.allowDowngrade = true;
    }
    const file = await uploadCall(() => uploads.finish(uploadId));
    const queued = ops.queueUpload(file, request.consoleUser!, query.allowDowngrade);
    return reply.status(202).send(queued);
  });
}
