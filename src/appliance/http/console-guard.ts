/**
 * The console API's gate, run on every request under /api/v1: refuses requests from
 * another site (an Origin that is not one of the console's configured origins), then lets a request in with a live session (plus its CSRF token when it
 * changes state) or with the console credentials as HTTP basic auth; basic logins whose
 * header is not verified yet count towards the client's limit from before the password
 * check (a success forgets them). Login itself (POST /session) and the OpenAPI
 * document pass without credentials.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { secretsEqual, verifyPasswordAsync } from '../security/credentials.js';
import { parseBasicAuth } from './common.js';
import { LoginLimiter, SESSION_COOKIE, csrfOk, type Session, type SessionStore, type VerifiedBasicHeaders } from './console-auth.js';
import type { ConsoleOperations } from './operations.js';

declare module 'fastify' {
  interface FastifyRequest {
    consoleUser?: string;
    consoleSession?: Session;
  }
}

/** The state the gate reads and updates. */
export interface ConsoleGuardState {
  ops: Pick<ConsoleOperations, 'consoleAccount' | 'consoleOrigins' | 'recordEvent'>;
  sessions: SessionStore;
  limiter: LoginLimiter;
  verified: VerifiedBasicHeaders;
}

/** Whether the `Origin` header `origin` (RFC 6454) is one of `allowed` (serialized origins). */
export function consoleOrigin(origin: string, allowed: string[]): boolean {
  let serialized: string;
  try {
    serialized = new URL(origin).origin;
  } catch {
    return false;
  }
  return allowed.some((a) => a === serialized);
}

/** Answers 429 AG_TOO_MANY_LOGINS with Retry-After: `wait` seconds. */
export function tooManyLogins(reply: FastifyReply, wait: number): FastifyReply {
  return reply.status(429).header('retry-after', String(wait)).send({ code: 'AG_TOO_MANY_LOGINS', message: `too many failed logins; try again in ${wait} s` });
}

/**
 * Answers 401. A Basic challenge makes browsers open their own login dialog over the
 * console's (and hang a fetch); browsers (Sec-Fetch-*) get the session scheme, scripts
 * the Basic one.
 */
function unauthorized(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply
    .status(401)
    .header('www-authenticate', request.headers['sec-fetch-mode'] ? 'Session realm="airgap console"' : 'Basic realm="airgap console", charset="UTF-8"')
    .send({ code: 'AG_UNAUTHORIZED', message: 'log in with the console credentials (airgap-setup prints them)' });
}

/**
 * The onRequest hook of the console API. On success it sets `request.consoleUser` (and
 * `consoleSession` for a session); otherwise it answers 403 AG_CROSS_SITE, 403 AG_CSRF,
 * 429 AG_TOO_MANY_LOGINS or 401 AG_UNAUTHORIZED itself.
 */
export function consoleGuard(state: ConsoleGuardState) {
  const { ops, sessions, limiter, verified } = state;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    // A browser on another site must not drive the console, whatever credentials it holds.
    // The Host header is not trusted for this: a DNS-rebinding page sends its own name as
    // both Origin and Host. The origin must be one the appliance is configured to be.
    const origin = request.headers.origin;
    if (origin && !['GET', 'HEAD', 'OPTIONS'].includes(request.method) && !consoleOrigin(origin, ops.consoleOrigins())) {
      return reply.status(403).send({ code: 'AG_CROSS_SITE', message: 'cross-site requests are refused' });
    }
    if (path === '/api/v1/session' && request.method === 'POST') return;
    if (path === '/api/v1/openapi.json') return;
    const session = sessions.get(request.cookies[SESSION_COOKIE]);
    if (session) {
      if (!['GET', 'HEAD'].includes(request.method) && !csrfOk(session, request.headers['x-csrf-token'] as string | undefined)) {
        return reply.status(403).send({ code: 'AG_CSRF', message: 'the request lacks the session\'s CSRF token (x-csrf-token)' });
      }
      request.consoleUser = session.username;
      request.consoleSession = session;
      return;
    }
    const header = request.headers.authorization ?? '';
    if (/^Basic\s/i.test(header)) {
      const given = parseBasicAuth(header);
      const account = ops.consoleAccount();
      const client = LoginLimiter.clientOf(request.ip);
      const wait = limiter.retryAfter(client);
      if (wait) return tooManyLogins(reply, wait);
      if (verified.has(account.passwordHash, header)) {
        request.consoleUser = account.username;
        return;
      }
      // Counted before the slow hash (nothing awaits since the check above), so parallel
      // attempts cannot all slip under the limit; a success forgets it.
      limiter.fail(client);
      if (given && secretsEqual(given.username, account.username) && (await verifyPasswordAsync(given.password, account.passwordHash))) {
        limiter.succeed(client);
        verified.add(account.passwordHash, header);
        request.consoleUser = account.username;
        return;
      }
      ops.recordEvent(client, 'console.login_failed', `basic auth refused for '${(given?.username ?? '').slice(0, 64)}'`, { client });
    }
    return unauthorized(request, reply);
  };
}
