/** Key/value settings (the repo address, the registries' HTTP secret, …). */
import type { Db } from './db.js';

export function getSetting(db: Db, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value;
}

/** Sets `key`; returns true when the stored value changed. */
export function setSetting(db: Db, key: string, value: string): boolean {
  if (getSetting(db, key) === value) return false;
  db.prepare('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at').run(
    key,
    value,
    new Date().toISOString(),
  );
  return true;
}
