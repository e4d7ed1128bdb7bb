/**
 * The event log and audit trail: who did what, from where, how it ended, and when
 * (registry restarts, setup, imports, logins, reveals of passwords, deletes, backups).
 */
import type { Db } from './db.js';

export interface ApplianceEvent {
  id: number;
  at: string;
  /** Who: a console user, `cli` (the admin socket), `daemon`, `inbox`, `retention`, or a client address for refused logins. */
  actor: string;
  /** What: e.g. console.login, import.finished, release.deleted, setup.applied. */
  kind: string;
  message: string;
  /** From where: the client's address for the console, `admin-socket` for the CLI, `local` for the daemon's own work. */
  origin: string;
  /** How it ended: `success` or `failure`. */
  outcome: 'success' | 'failure';
  data?: unknown;
}

/** Kinds whose name says they failed or were refused. */
const FAILURE = /(failed|refused|abandoned|rolled_back|orphan_stopped)$/;
/** Actors that are the box itself. */
const LOCAL_ACTORS = new Set(['daemon', 'inbox', 'retention']);

/** Where an event came from when its recorder did not say: the client of its data, else by actor. */
export function originOf(actor: string, data: unknown): string {
  const client = (data as { client?: unknown } | undefined)?.client;
  if (typeof client === 'string' && client) return client;
  if (actor === 'cli') return 'admin-socket';
  return LOCAL_ACTORS.has(actor) ? 'local' : 'console';
}

/** Records an event and returns it as stored. */
export function recordEvent(db: Db, event: { actor: string; kind: string; message: string; data?: unknown; origin?: string; outcome?: ApplianceEvent['outcome'] }): ApplianceEvent {
  const at = new Date().toISOString();
  const origin = event.origin ?? originOf(event.actor, event.data);
  const outcome = event.outcome ?? (FAILURE.test(event.kind) ? 'failure' : 'success');
  const info = db.prepare('INSERT INTO events (at, actor, kind, message, data, origin, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
    at,
    event.actor,
    event.kind,
    event.message,
    event.data === undefined ? null : JSON.stringify(event.data),
    origin,
    outcome,
  );
  return { id: Number(info.lastInsertRowid), at, actor: event.actor, kind: event.kind, message: event.message, origin, outcome, ...(event.data === undefined ? {} : { data: event.data }) };
}

type Row = Omit<ApplianceEvent, 'data' | 'origin' | 'outcome'> & { data: string | null; origin: string | null; outcome: string | null };

function fromRow({ data, origin, outcome, ...row }: Row): ApplianceEvent {
  const event: ApplianceEvent = { ...row, origin: origin ?? originOf(row.actor, data ? JSON.parse(data) : undefined), outcome: (outcome as ApplianceEvent['outcome'] | null) ?? (FAILURE.test(row.kind) ? 'failure' : 'success') };
  return data === null ? event : { ...event, data: JSON.parse(data) as unknown };
}

/**
 * Events, filtered by kind prefix (e.g. `registry.`). Without `since`/`afterId`: the
 * newest `limit`, newest first. With `since` (ISO 8601) or `afterId`: the oldest `limit`
 * at or after that time / after that id, oldest first (what `airgap events --since`
 * and a follower page through).
 */
export function listEvents(db: Db, options: { limit?: number; kind?: string; since?: string; afterId?: number } = {}): ApplianceEvent[] {
  const kind = `${(options.kind ?? '').replace(/[%_]/g, '')}%`;
  const limit = options.limit ?? 100;
  const rows = (options.since !== undefined || options.afterId !== undefined
    ? db.prepare('SELECT id, at, actor, kind, message, data, origin, outcome FROM events WHERE kind LIKE ? AND at >= ? AND id > ? ORDER BY id ASC LIMIT ?').all(kind, options.since ?? '', options.afterId ?? 0, limit)
    : db.prepare('SELECT id, at, actor, kind, message, data, origin, outcome FROM events WHERE kind LIKE ? ORDER BY id DESC LIMIT ?').all(kind, limit)) as Row[];
  return rows.map(fromRow);
}
