/** GET /ca.crt: the appliance CA, served by the HTTPS app, the HTTP app and the console API. */
import type { FastifyInstance } from 'fastify';

/**
 * Adds GET /ca.crt to `app` (under its prefix): `caPem()` as a PEM download.
 * `tags` lists the route in the OpenAPI document.
 */
export function registerCaRoute(app: FastifyInstance, caPem: () => string, tags?: string[]): void {
  app.get('/ca.crt', { schema: { ...(tags ? { tags } : {}), response: { 200: { type: 'string' } } } }, async (_request, reply) =>
    reply.type('application/x-pem-file').header('content-disposition', 'attachment; filename="airgap-ca.crt"').send(caPem()),
  );
}
