/** /api/v1/status, /api/v1/connection and /api/v1/ca.crt: the appliance's health and how to reach it. */
import type { FastifyInstance } from 'fastify';
import type { ConsoleOperations } from '../operations.js';
import { registerCaRoute } from './ca.js';
import { openObject, responses } from './schemas.js';

/**
 * Adds GET /status, /connection (passwords only with `?reveal=true`, which is recorded)
 * and /ca.crt to `api`.
 */
export function registerApplianceRoutes(api: FastifyInstance, ops: Pick<ConsoleOperations, 'status' | 'connectionDetails' | 'caPem' | 'recordEvent'>): void {
  api.get('/status', { schema: { tags: ['appliance'], response: responses(openObject) } }, async () => ops.status());

  api.get('/connection', {
    schema: {
      tags: ['appliance'],
      querystring: { type: 'object', properties: { reveal: { type: 'boolean', default: false } }, additionalProperties: false },
      response: responses(openObject),
    },
  }, async (request) => {
    const details = ops.connectionDetails();
    const reveal = (request.query as { reveal: boolean }).reveal;
    if (reveal) {
      ops.recordEvent(request.consoleUser!, 'console.passwords_revealed', `${request.consoleUser} revealed the passwords from ${request.ip}`, { client: request.ip });
      return details;
    }
    const hide = <T extends { password: string }>(c: T) => ({ ...c, password: null });
    const helm = details.helmRepository; // its addCommand reads the password from stdin: nothing to hide in it
    return {
      ...details,
      repository: hide(details.repository),
      imageRegistry: hide(details.imageRegistry),
      packRegistry: hide(details.packRegistry),
      console: hide(details.console),
      helmRepository: { url: helm.url, username: helm.username, password: null, addCommand: helm.addCommand },
    };
  });

  registerCaRoute(api, () => ops.caPem(), ['appliance']);
}
