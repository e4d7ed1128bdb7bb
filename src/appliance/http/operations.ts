/**
 * What the HTTP apps need of the appliance: the narrow interfaces the daemon implements
 * (server.ts) and tests fake. Routes call these and nothing else of the daemon.
 */
import type { ApplianceStatus } from '../daemon/status.js';
import type { ConnectionDetails, SetupOptions, SetupResult } from '../daemon/setup.js';
import type { ImportUpdate } from '../import/runner.js';
import type { ApplianceEvent } from '../store/events.js';
import type { ImportRow } from '../store/imports.js';
import type { ArtifactQuery, ArtifactRow, Page, ReleaseSummary } from '../store/releases.js';
import type { NodeConfigFile } from '../daemon/node-config.js';

/** What the console API needs of the appliance. */
export interface ConsoleOperations {
  /** The console account: user name and scrypt hash of its password. */
  consoleAccount(): { username: string; passwordHash: string };
  /**
   * The origins the console is served at (`https://<name>[:port]`, as `URL.origin` writes
   * them): the repo address and the server certificate's other names. Browsers' requests
   * from any other origin are refused, whatever their Host header says.
   */
  consoleOrigins(): string[];
  status(): Promise<ApplianceStatus>;
  connectionDetails(): ConnectionDetails;
  caPem(): string;
  /**
   * One page of releases, newest import first, without their artifact lists, and the
   * current release's version. `after` is the `next` of the page before; throws
   * AirgapError AG_BAD_REQUEST for a cursor the list did not give.
   */
  releases(page: { after?: string | undefined; limit: number }): Page<ReleaseSummary> & { current: string | null };
  /** Release `version` without its artifact lists; undefined when it is not on the box. */
  release(version: string): ReleaseSummary | undefined;
  /**
   * One page of the artifacts of one kind, in (target, release) order: of release
   * `query.version`, or of every release when it is absent. Throws AirgapError
   * AG_NOT_FOUND for a version not on the box, AG_BAD_REQUEST for a cursor the list did not give.
   */
  artifacts(query: ArtifactQuery): Page<ArtifactRow>;
  listImports(limit: number): ImportRow[];
  getImport(id: number): ImportRow | undefined;
  followImport(id: number, onUpdate: (u: ImportUpdate) => void, onDone: (row: ImportRow) => void): () => void;
  /** Queues an import of a file in the uploads folder; the file is removed when the import ends. */
  queueUpload(file: string, actor: string, allowDowngrade: boolean): { import: ImportRow; queuePosition: number };
  events(limit: number): ApplianceEvent[];
  recordEvent(actor: string, kind: string, message: string, data?: Record<string, unknown>): void;
  /** Where uploads are written. */
  uploadsDir: string;
  /** Free bytes on the uploads volume. */
  freeBytes(dir: string): Promise<number>;
  /** Largest upload accepted, bytes. */
  maxUploadBytes: number;
  /** Deletes a release (never the current one), then collects garbage (daemon/maintenance.ts). */
  deleteRelease(version: string, actor: string): Promise<unknown>;
  /** Collects garbage in both registries. */
  collectGarbage(actor: string): Promise<unknown>;
  /** What changes from release `from` to release `to`; throws UsageError for a version not on the box. */
  diff(from: string, to: string): unknown;
  /** The files of `airgap node-config` (daemon/node-config.ts). */
  nodeConfigFiles(): NodeConfigFile[];
  /** Streams a backup of the state (no data) into `sink`; throws at once when one runs already, rejects when it fails (the stream is then cut). */
  backupTo(sink: NodeJS.WritableStream, actor: string): Promise<void>;
}

/** What the admin API needs of the appliance. */
export interface AdminOperations {
  status(): Promise<ApplianceStatus>;
  setup(repoAddress: string, actor: string, options?: SetupOptions): Promise<SetupResult>;
  /** Events: the newest `limit` (newest first), or with `since`/`afterId` the oldest after them (oldest first). */
  events(limit: number, options?: { since?: string; afterId?: number }): ApplianceEvent[];
  /** Calls `onEvent` with each event recorded from now on; returns the unsubscribe function. */
  followEvents(onEvent: (event: ApplianceEvent) => void): () => void;
  /** Queues an import of an absolute path; throws AirgapError when the file is not there. */
  queueImport(request: { file: string; allowDowngrade: boolean }, actor: string): Promise<{ import: ImportRow; queuePosition: number }>;
  listImports(limit: number): ImportRow[];
  getImport(id: number): ImportRow | undefined;
  /** Cancels a queued or running import; resolves its row once it has ended and whether this call cancelled it; undefined when there is none. */
  cancelImport(id: number, actor: string): Promise<{ import: ImportRow; cancelled: boolean } | undefined>;
  /**
   * Calls `onUpdate` with the import's live state now and on every change, then `onDone`
   * with its final row (at once when it is finished). Returns an unsubscribe function.
   */
  followImport(id: number, onUpdate: (u: ImportUpdate) => void, onDone: (row: ImportRow) => void): () => void;
  /** releases.json's document; `files: false` gives each release's `fileCount` instead of its files. */
  releases(options: { files: boolean }): unknown;
  /** Artifacts of every release, or of `version`, of one kind or all. */
  artifacts(kind: string | undefined, version: string | undefined): unknown[];
  /** URLs, usernames and passwords of the repository and registries, and the CA (what `airgap setup` prints). */
  connectionDetails(): ConnectionDetails;
  /** Deletes a release (never the current one), then collects garbage (daemon/maintenance.ts). */
  deleteRelease(version: string, actor: string): Promise<unknown>;
  /** Collects garbage in both registries. */
  collectGarbage(actor: string): Promise<unknown>;
  /** Keeps the current release and the keep-1 newest others, deletes the rest, then collects garbage. */
  prune(keep: number, actor: string, dryRun: boolean): Promise<unknown>;
  /** Every file a node needs (daemon/node-config.ts). */
  nodeConfig(): unknown;
  /** Writes a backup to the absolute path `out` with no import running (backup/backup.ts). */
  backup(out: string, withData: boolean, actor: string): Promise<unknown>;
}
