/**
 * The console's HTTP API under /api/v1 (JSON; a schema on every route; OpenAPI at
 * /api/v1/openapi.json). Authentication: a session cookie from POST /api/v1/session, or
 * HTTP basic auth with the console credentials for scripts. Session requests that change
 * state carry the session's CSRF token in `x-csrf-token`; any request whose Origin is
 * another site is refused (console-guard.ts). Uploads stream to disk (never buffered),
 * in resumable chunks (upload-store.ts). One route module per resource under routes/.
 */
import type { FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import { LoginLimiter, SessionStore, VerifiedBasicHeaders } from './console-auth.js';
import { consoleGuard } from './console-guard.js';
import type { ConsoleOperations } from './operations.js';
import { UploadStore } from './upload-store.js';
import { registerApplianceRoutes } from './routes/appliance.js';
import { registerContentRoutes } from './routes/content.js';
import { registerEventRoutes } from './routes/events.js';
import { registerImportRoutes } from './routes/imports.js';
import { registerMaintenanceRoutes } from './routes/maintenance.js';
import { registerSessionRoutes } from './routes/session.js';
import { registerUploadRoutes } from './routes/uploads.js';

export type { ConsoleOperations } from './operations.js';
export { ApiError } from './api-error.js';

/**
 * Registers /api/v1 on `app` (the HTTPS app, with @fastify/swagger registered before).
 * `secureCookie` is false only for inject tests over plain HTTP. Removes partial upload
 * files an earlier run left in `ops.uploadsDir`; throws the file system's errors.
 */
export async function registerApi(app: FastifyInstance, ops: ConsoleOperations, options: { secureCookie?: boolean } = {}): Promise<void> {
  const sessions = new SessionStore();
  const limiter = new LoginLimiter();
  const uploads = new UploadStore({ dir: ops.uploadsDir, maxBytes: ops.maxUploadBytes, freeBytes: (dir) => ops.freeBytes(dir) });
  await app.register(fastifyCookie);
  await uploads.start();
  app.addHook('onClose', async () => uploads.close());

  await app.register(async (api) => {
    // .bin bodies arrive as streams; nothing buffers them.
    api.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
    api.addHook('onRequest', consoleGuard({ ops, sessions, limiter, verified: new VerifiedBasicHeaders() }));

    registerSessionRoutes(api, { ops, sessions, limiter, secureCookie: options.secureCookie !== false });
    registerApplianceRoutes(api, ops);
    registerContentRoutes(api, ops);
    registerEventRoutes(api, ops);
    registerImportRoutes(api, ops, uploads);
    registerUploadRoutes(api, uploads);
    registerMaintenanceRoutes(api, ops);

    api.get('/openapi.json', { schema: { hide: true } }, async () => (app as FastifyInstance & { swagger(): unknown }).swagger());
  }, { prefix: '/api/v1' });
}
