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
  // 2: releases and their artifacts, imports (jobs) and the blob journal
  `
  CREATE TABLE imports (
    id             INTEGER PRIMARY KEY,
    file           TEXT NOT NULL,          -- absolute path of the .bin
    source         TEXT NOT NULL,          -- cli | inbox | upload
    actor          TEXT NOT NULL,
    options        TEXT NOT NULL,          -- JSON: { allowDowngrade }
    state          TEXT NOT NULL,          -- queued | running | imported | unchanged | failed
    stage          TEXT,                   -- open | preflight | images | charts | packs | files | tags | commit
    name           TEXT,
    version        TEXT,
    payload_sha256 TEXT,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT,
    resumed        INTEGER NOT NULL DEFAULT 0,   -- times it was resumed after a daemon restart
    error_code     TEXT,
    error_message  TEXT,
    error_hint     TEXT,
    result         TEXT                    -- JSON: the summary airgap import --json prints
  );
  CREATE INDEX imports_state ON imports (state);
  CREATE TABLE import_blobs (
    import_id  INTEGER NOT NULL REFERENCES imports (id),
    registry   TEXT NOT NULL,              -- images | packs
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    action     TEXT NOT NULL,              -- pushed | mounted | present
    at         TEXT NOT NULL,
    PRIMARY KEY (import_id, registry, repository, digest)
  );
  CREATE INDEX import_blobs_digest ON import_blobs (registry, digest);
  CREATE TABLE releases (
    version        TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    created        TEXT NOT NULL,          -- from the TOC
    payload_sha256 TEXT NOT NULL,
    toc_sha256     TEXT NOT NULL,
    key_id         TEXT,                   -- NULL: imported unsigned (allowed explicitly)
    import_id      INTEGER NOT NULL REFERENCES imports (id),
    imported_at    TEXT NOT NULL,
    current        INTEGER NOT NULL DEFAULT 0
  );
  CREATE UNIQUE INDEX releases_one_current ON releases (current) WHERE current = 1;
  CREATE TABLE artifacts (
    release_version TEXT NOT NULL REFERENCES releases (version),
    kind            TEXT NOT NULL,         -- image | chart | pack | file
    target          TEXT NOT NULL,         -- repository:tag, or the path under /repo/<version>/
    digest          TEXT NOT NULL,         -- sha256:<hex> of the manifest, index or file
    size            INTEGER NOT NULL,
    media_type      TEXT,
    platforms       TEXT,                  -- JSON array, images only
    PRIMARY KEY (release_version, kind, target)
  );
  `,
  // 3: a release restored from a backup without its data is recorded but not on the
  //    registries: its .bin must be imported again (airgap restore).
  `
  ALTER TABLE releases ADD COLUMN needs_reimport INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: where each image came from (the TOC's informative source): node-config mirrors
  //    the upstream registries so images keep their original names on the nodes.
  `
  ALTER TABLE artifacts ADD COLUMN source TEXT;
  `,
  // 5: the audit trail: where each event came from and how it ended; events by kind.
  `
  ALTER TABLE events ADD COLUMN origin TEXT;
  ALTER TABLE events ADD COLUMN outcome TEXT;
  CREATE INDEX events_kind ON events (kind);
  `,
  // 6: the console's lists of one kind across every release, a page at a time in
  //    (target, release) order (store/releases.ts, artifactListPage): without it each page
  //    sorts every artifact of that kind.
  `
  CREATE INDEX artifacts_kind_target ON artifacts (kind, target, release_version);
  `,
];
