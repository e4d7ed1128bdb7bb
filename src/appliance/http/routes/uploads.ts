/**
 * /api/v1/uploads: resumable uploads of a .bin. Create with its name and size, then PUT
 * chunks (application/octet-stream, with Content-Range) at the offset GET gives, then
 * POST /imports with the upload's id. The UploadStore does the work; these routes
 * translate HTTP to its calls and its error codes to statuses.
 */
import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { httpStatusOf } from '../../../kit/errors.js';
import { ApiError } from '../api-error.js';
import { UploadError, parseContentRange, type UploadStore } from '../upload-store.js';
import { errorSchema, responses } from './schemas.js';

/**
 * Runs `call` on the upload store; an UploadError it throws becomes an ApiError with its
 * code's status (kit/errors.ts, ERROR_STATUS: a range that does not fit the upload is 416
 * as in the OCI distribution spec's chunked upload, a body longer or shorter than its
 * Content-Range 400, RFC 9110 15.5.1: the request contradicts itself).
 */
export async function uploadCall<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof UploadError) throw new ApiError(httpStatusOf(err.code), err.code, err.message, err.hint);
    throw err;
  }
}

/** Whether the request body is a .bin stream (the parser hands those over unread). */
export function isOctetStream(contentType: string | undefined): boolean {
  return /^application\/octet-stream\b/i.test(contentType ?? '');
}

const uploadSchema = { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, size: { type: 'integer' }, offset: { type: 'integer' } } };
const uploadIdParams = { type: 'object', properties: { id: { type: 'string' } } };

/** Adds POST /uploads and GET, PUT, DELETE /uploads/:id to `api`. */
export function registerUploadRoutes(api: FastifyInstance, uploads: UploadStore): void {
  api.post('/uploads', {
    schema: {
      tags: ['imports'],
      body: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'integer', minimum: 1 } }, required: ['name', 'size'], additionalProperties: false },
      response: responses(uploadSchema, 201),
    },
  }, async (request, reply) => {
    const { name, size } = request.body as { name: string; size: number };
    return reply.status(201).send(await uploadCall(() => uploads.open(name, size)));
  });

  api.get('/uploads/:id', { schema: { tags: ['imports'], params: uploadIdParams, response: responses(uploadSchema) } }, async (request) =>
    uploadCall(() => uploads.get((request.params as { id: string }).id)),
  );

  api.put('/uploads/:id', { schema: { tags: ['imports'], params: uploadIdParams, response: responses(uploadSchema) } }, async (request) => {
    const { id } = request.params as { id: string };
    await uploadCall(() => uploads.get(id));
    if (!isOctetStream(request.headers['content-type'])) throw new ApiError(415, 'AG_UPLOAD_TYPE', 'send chunks as application/octet-stream');
    const header = request.headers['content-range'];
    const range = parseContentRange(header);
    // A Content-Range we cannot read is refused, never taken as "append at the offset".
    if (header !== undefined && !range) throw new ApiError(416, 'AG_UPLOAD_RANGE', `Content-Range '${header.slice(0, 100)}' is not of the form 'bytes <first>-<last>/<size>'`);
    return uploadCall(() => uploads.append(id, request.body as Readable, { range, length: Number(request.headers['content-length']) }));
  });

  api.delete('/uploads/:id', { schema: { tags: ['imports'], params: uploadIdParams, response: { 204: { type: 'null' }, 404: errorSchema, 409: errorSchema } } }, async (request, reply) => {
    await uploadCall(() => uploads.remove((request.params as { id: string }).id));
    return reply.status(204).send();
  });
}
