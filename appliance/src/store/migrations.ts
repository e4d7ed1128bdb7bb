/**
 * Numbered schema migrations: entry N-1 moves the database from user_version N-1 to N.
 * Append only; never edit a migration that has shipped.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: settings, credentials, events
  `
  CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE credentials (
    name          TEXT PRIMARY KEY,   -- repository | imageRegistry | packRegistry | console
    username      TEXT NOT NULL,
    password      TEXT NOT NULL,      -- printed by airgap-setup; the file is 0600
    password_hash TEXT NOT NULL,      -- scrypt, for checks that must not need the plain text
    created_at    TEXT NOT NULL
  );
  CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,            -- daemon | cli | <console user>
    kind    TEXT NOT NULL,            -- e.g. daemon.started, registry.restarted, setup.applied
    message TEXT NOT NULL,
    data    TEXT                      -- JSON
  );
  CREATE INDEX events_at ON events (at);
  `,
];
