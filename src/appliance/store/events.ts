/** The event log: who did what, when (registry restarts, setup, imports, logins). */
import type { Db } from './db.js';

export interface ApplianceEvent {
  id: number;
  at: string;
  actor: string;
  kind: string;
  message: string;
  data?: unknown;
}

export function recordEvent(db: Db, event: { actor: string; kind: string; message: string; data?: unknown }): void {
  db.prepare('INSERT INTO events (at, actor, kind, message, data) VALUES (?, ?, ?, ?, ?)').run(
    new Date().toISOString(),
    event.actor,
    event.kind,
    event.message,
    event.data === undefined ? null : JSON.stringify(event.data),
  );
}

/** The newest `limit` events, newest first; `kind` filters by prefix (e.g. `registry.`). */
export function listEvents(db: Db, options: { limit?: number; kind?: string } = {}): ApplianceEvent[] {
  const rows = db
    .prepare('SELECT id, at, actor, kind, message, data FROM events WHERE kind LIKE ? ORDER BY id DESC LIMIT ?')
    .all(`${(options.kind ?? '').replace(/[%_]/g, '')}%`, options.limit ?? 100) as Array<Omit<ApplianceEvent, 'data'> & { data: string | null }>;
  return rows.map(({ data, ...row }) => (data === null ? row : { ...row, data: JSON.parse(data) as unknown }));
}
