/**
 * Console authentication: sessions (an httpOnly, Secure, SameSite=Strict cookie naming a
 * random id, with a CSRF token per session), a limiter of failed logins per client, and
 * the checks of HTTP basic auth for scripts. Passwords are checked against the stored
 * scrypt hash in constant time (credentials.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { secretsEqual } from '../security/credentials.js';

export const SESSION_COOKIE = 'airgap_session';
/** Sessions last 12 hours from login. */
export const SESSION_SECONDS = 12 * 3600;

export interface Session {
  id: string;
  username: string;
  csrfToken: string;
  expiresAt: number;
}

/** Sessions in memory: a daemon restart logs everyone out, which is fine for an appliance console. */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  create(username: string, now = Date.now()): Session {
    this.prune(now);
    const session = { id: randomBytes(32).toString('base64url'), username, csrfToken: randomBytes(24).toString('base64url'), expiresAt: now + SESSION_SECONDS * 1000 };
    this.sessions.set(session.id, session);
    return session;
  }

  /**
   * The live session of `id`, or undefined (unknown or expired). Each use extends it:
   * a session ends after 12 hours without requests (a long upload keeps it alive).
   */
  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.expiresAt <= now) {
      this.sessions.delete(id);
      return undefined;
    }
    session.expiresAt = now + SESSION_SECONDS * 1000;
    return session;
  }

  delete(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  private prune(now: number): void {
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}

/** Whether `given` is the session's CSRF token (constant time). */
export function csrfOk(session: Session, given: string | undefined): boolean {
  return given !== undefined && secretsEqual(given, session.csrfToken);
}

/**
 * Failed logins per client: after `limit` failures within `windowSeconds`, further
 * attempts are refused (429) until the window has passed since the oldest of them. An
 * attempt counts as a failure from the moment it starts (`attempt`) until it succeeds.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limit = 5, private readonly windowSeconds = 60, private readonly maxClients = 10_000) {}

  /** The client key: an IPv4 address, or the /64 of an IPv6 one (one host has many). */
  static clientOf(ip: string): string {
    if (!ip.includes(':') || ip.startsWith('::ffff:')) return ip.replace(/^::ffff:/, '');
    const groups = new URL(`http://[${ip}]/`).hostname.slice(1, -1).split(':');
    const full = groups.includes('') ? [...groups.slice(0, groups.indexOf('')), ...Array<string>(8 - groups.filter(Boolean).length).fill('0'), ...groups.slice(groups.lastIndexOf('') + 1)] : groups;
    return `${full.slice(0, 4).join(':')}::/64`;
  }

  /** Seconds to wait before trying again, or 0 when the client may try now. */
  retryAfter(client: string, now = Date.now()): number {
    const recent = this.recent(client, now);
    if (recent.length < this.limit) return 0;
    return Math.max(1, Math.ceil((recent[0]! + this.windowSeconds * 1000 - now) / 1000));
  }

  /**
   * Counts an attempt of `client` before its password is checked, so parallel attempts
   * cannot all pass the check while the (slow) hashes run: returns the seconds to wait
   * when the client is over its limit (nothing is counted then), else 0 with the attempt
   * counted as a failure. Call `succeed` when the password was right.
   */
  attempt(client: string, now = Date.now()): number {
    const wait = this.retryAfter(client, now);
    if (!wait) this.fail(client, now);
    return wait;
  }

  /** Counts a failure of `client` at `now`. */
  fail(client: string, now = Date.now()): void {
    const recent = this.recent(client, now);
    this.failures.delete(client); // re-insert: the Map keeps the most recent failures last
    this.failures.set(client, [...recent, now]);
    // Bounded memory: forget the clients whose failures are oldest.
    while (this.failures.size > this.maxClients) this.failures.delete(this.failures.keys().next().value as string);
  }

  /** Forgets the failures of `client` (it logged in: its attempt counted by `attempt` too). */
  succeed(client: string): void {
    this.failures.delete(client);
  }

  private recent(client: string, now: number): number[] {
    const list = (this.failures.get(client) ?? []).filter((t) => t > now - this.windowSeconds * 1000);
    if (list.length) this.failures.set(client, list);
    else this.failures.delete(client);
    return list;
  }
}

/**
 * Basic auth headers verified lately. A script sends the same header on every request
 * and scrypt is slow on purpose, so a verified header is trusted for `ttlMs`; the key
 * includes the password hash, so a changed password ends the trust.
 */
export class VerifiedBasicHeaders {
  private readonly until = new Map<string, number>();

  constructor(private readonly ttlMs = 60_000, private readonly maxEntries = 1000) {}

  /** Whether `header` was verified against `passwordHash` within the last ttlMs. */
  has(passwordHash: string, header: string, now = Date.now()): boolean {
    return (this.until.get(this.key(passwordHash, header)) ?? 0) > now;
  }

  /** Remembers `header` as verified against `passwordHash` (forgets all once maxEntries are held). */
  add(passwordHash: string, header: string, now = Date.now()): void {
    if (this.until.size > this.maxEntries) this.until.clear();
    this.until.set(this.key(passwordHash, header), now + this.ttlMs);
  }

  private key(passwordHash: string, header: string): string {
    return createHash('sha256').update(`${passwordHash}\0${header}`).digest('hex');
  }
}
