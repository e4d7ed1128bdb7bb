/** /api/v1/session: log in (a session cookie and its CSRF token), who am I, log out. */
import type { FastifyInstance } from 'fastify';
import { secretsEqual, verifyPasswordAsync } from '../../security/credentials.js';
import { LoginLimiter, SESSION_COOKIE, SESSION_SECONDS, type SessionStore } from '../console-auth.js';
import { tooManyLogins } from '../console-guard.js';
import type { ConsoleOperations } from '../operations.js';
import { responses } from './schemas.js';

export interface SessionRouteOptions {
  ops: Pick<ConsoleOperations, 'consoleAccount' | 'recordEvent'>;
  sessions: SessionStore;
  limiter: LoginLimiter;
  /** False only for inject tests over plain HTTP. */
  secureCookie: boolean;
}

/**
 * Adds POST, GET and DELETE /session to `api`. A login checks the password against the
 * stored scrypt hash; attempts count per client before the check (a success forgets
 * them), failures are recorded, and the sixth attempt within a minute that did not
 * succeed is answered 429, also when they all arrive at once.
 */
export function registerSessionRoutes(api: FastifyInstance, options: SessionRouteOptions): void {
  const { ops, sessions, limiter } = options;

  api.post('/session', {
    schema: {
      tags: ['session'],
      body: { type: 'object', properties: { username: { type: 'string', maxLength: 256 }, password: { type: 'string', maxLength: 1024 } }, required: ['username', 'password'], additionalProperties: false },
      response: responses({ type: 'object', properties: { username: { type: 'string' }, csrfToken: { type: 'string' } } }),
    },
  }, async (request, reply) => {
    const { username, password } = request.body as { username: string; password: string };
    const client = LoginLimiter.clientOf(request.ip);
    // Counted before the slow hash, so parallel attempts cannot all slip under the limit.
    const wait = limiter.attempt(client);
    if (wait) return tooManyLogins(reply, wait);
    const account = ops.consoleAccount();
    const userOk = secretsEqual(username, account.username);
    const passOk = await verifyPasswordAsync(password, account.passwordHash);
    if (!userOk || !passOk) {
      ops.recordEvent(client, 'console.login_failed', `login refused for '${username.slice(0, 64)}'`, { client });
      return reply.status(401).send({ code: 'AG_BAD_LOGIN', message: 'wrong username or password' });
    }
    limiter.succeed(client);
    const session = sessions.create(account.username);
    ops.recordEvent(account.username, 'console.login', `${account.username} logged in from ${client}`, { client });
    reply.setCookie(SESSION_COOKIE, session.id, { path: '/', httpOnly: true, secure: options.secureCookie, sameSite: 'strict', maxAge: SESSION_SECONDS });
    return { username: session.username, csrfToken: session.csrfToken };
  });

  api.get('/session', { schema: { tags: ['session'], response: responses({ type: 'object', properties: { username: { type: 'string' }, csrfToken: { type: ['string', 'null'] } } }) } }, async (request) => ({
    username: request.consoleUser!,
    csrfToken: request.consoleSession?.csrfToken ?? null,
  }));

  api.delete('/session', { schema: { tags: ['session'], response: { 204: { type: 'null' } } } }, async (request, reply) => {
    sessions.delete(request.consoleSession?.id);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.status(204).send();
  });
}
