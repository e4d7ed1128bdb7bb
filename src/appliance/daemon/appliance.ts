/**
 * The appliance at run time: the composition of its parts and the operations the admin
 * API and the console call. Plain domain code: it knows nothing of HTTP; server.ts wires
 * it to Fastify.
 *
 *   state-dir.ts          self-check and pid lock of the state dir
 *   setup.ts              identity (PKI, credentials, secret), addresses, `airgap setup`
 *   status.ts             the status document
 *   registries/fleet.ts   the two supervised registries
 *   import/runner.ts      the import queue
 */
import { X509Certificate } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { AirgapError } from '../../kit/errors.js';
import { Mutex } from '../../kit/mutex.js';
import { SpaceReserve } from '../../kit/space-reserve.js';
import type { ServeConfig } from '../config/config.js';
import { stateLayout, type StateLayout } from '../config/state-layout.js';
import { writeReleasesJson } from '../import/commit.js';
import { writeChartIndex } from '../import/chart-repo.js';
import { deleteRelease, finishPendingDelete, garbageCollect, prune, type DeleteResult, type GcResult, type MaintenanceContext, type PruneResult } from './maintenance.js';
import { Importer } from '../import/runner.js';
import { RegistryFleet } from '../registries/fleet.js';
import type { AccountName, Credential } from '../security/credentials.js';
import type { TlsMaterial } from '../security/pki.js';
import { getCredential } from '../store/credentials.js';
import { openDatabase, type Db } from '../store/db.js';
import { originOf, recordEvent, type ApplianceEvent } from '../store/events.js';
import { openJournal, type JournalSink } from './journal.js';
import { applySetup, connectionDetails, loadIdentity, publicAddress, repoAddress, type ConnectionDetails, type Identity, type SetupOptions, type SetupResult } from './setup.js';
import { finishInterruptedWork, makeStateFolders, releaseStateDir, takeStateDir } from './state-dir.js';
import { readStatus, type ApplianceStatus } from './status.js';
import { readSettings } from '../config/config-file.js';
import { renderMetrics } from './metrics.js';
import { nodeConfigFiles, upstreamOf, type NodeConfigFile } from './node-config.js';
import { imageSources } from '../store/releases.js';
import { writeBackup, writeBackupFile, type BackupResult } from '../backup/backup.js';
import type { Writable } from 'node:stream';
import { collectGarbage } from '../../kit/memory.js';

export { StateDirError } from './state-dir.js';
export { certificateNames, type ConnectionDetails, type SetupResult } from './setup.js';
export type { ApplianceStatus } from './status.js';

export interface ApplianceOptions {
  config: ServeConfig;
  log: Logger;
  /** The airgap release, for status. */
  version: string;
  /** Called after the server certificate changed, so listeners reload it. */
  onTlsChange?: (tls: TlsMaterial) => void;
}

/** Kept free on the state volume so a failure can still be recorded when the disk fills (16 MiB). */
const SPACE_RESERVE_BYTES = 16 * 1024 * 1024;

/** The running appliance: open() builds it from its parts, close() gives everything back. */
export class Appliance {
  readonly importer: Importer;
  private readonly fleet: RegistryFleet;
  private readonly startedAt = new Date();
  /** Operations that change the appliance's config run one at a time. */
  private readonly changes = new Mutex();
  private closed = false;

  private constructor(
    private readonly options: ApplianceOptions,
    readonly layout: StateLayout,
    readonly db: Db,
    private readonly identity: Identity,
  ) {
    const { config, log } = options;
    this.fleet = new RegistryFleet({
      config,
      layout,
      log,
      tls: () => this.identity.tls,
      credentials: identity.credentials,
      httpSecret: identity.registryHttpSecret,
      serverName: () => (this.identity.certificate.source === 'site' ? (repoAddress(this.db) ?? undefined) : undefined),
      onEvent: (kind, message, data) => this.event('daemon', kind, message, data),
    });
    this.importer = new Importer({
      db,
      log: log.child({ component: 'import' }),
      layout,
      targets: (signal) => this.fleet.importTargets(signal),
      registryProblems: async () => this.fleet.notRunning(),
      allowUnsigned: config.allowUnsigned,
      reserve: new SpaceReserve(layout.spaceReserve, SPACE_RESERVE_BYTES),
      removeLeftoversSince: (sinceMs) => this.fleet.removeLeftoversSince(sinceMs),
      onEvent: (actor, kind, message, data) => this.event(actor, kind, message, data),
      // The plan and index of a large release are garbage now: give them back at once
      // (docs/architecture.md, section 6, point 12).
      onIdle: collectGarbage,
    });
    // An uploaded .bin is the appliance's copy: removed once its import has ended.
    this.importer.on('finished', (row?: { source: string; file: string; state: string }) => {
      if (row?.source === 'upload' && row.file.startsWith(`${layout.uploadsDir}/`)) void rm(row.file, { force: true });
      // Synchronously here: the retention's prune takes its turn before the next queued import starts.
      if (row?.state === 'imported') void this.applyRetention();
    });
  }

  /**
   * Prepares everything short of starting processes: checks and locks the state dir,
   * opens and migrates the database, makes the CA and credentials on first run, issues
   * the server certificate, writes the registry configs. Throws AirgapError subclasses
   * with a hint; on failure it releases what it took.
   */
  static async open(options: ApplianceOptions): Promise<Appliance> {
    const { config } = options;
    const layout = stateLayout(config.stateDir);
    await takeStateDir(layout);
    let db: Db | undefined;
    try {
      const interrupted = await finishInterruptedWork(layout);
      await makeStateFolders(layout);
      db = openDatabase(layout.database);
      const { identity, caCreated } = await loadIdentity(db, layout, config);
      const appliance = new Appliance(options, layout, db, identity);
      if (interrupted.restoreRolledBack) appliance.event('daemon', 'restore.rolled_back', 'a restore a stop interrupted was rolled back: the state is what it was before it; run the restore again');
      if (caCreated) appliance.event('daemon', 'pki.ca_created', 'made the appliance CA', { fingerprintSha256: new X509Certificate(identity.tls.caPem).fingerprint256 });
      await appliance.fleet.writeFiles();
      await writeReleasesJson(db, layout.repoDir);
      await writeChartIndex(db, layout.chartsDir).catch((err: unknown) => {
        // The box serves everything else; the index is written again at the next import.
        options.log.error({ err }, 'could not write charts/index.yaml');
        appliance.event('daemon', 'repo.chart_index_failed', `could not write charts/index.yaml: ${(err as Error).message}`);
      });
      await appliance.fleet.readVersion();
      return appliance;
    } catch (err) {
      db?.close();
      await releaseStateDir(layout);
      throw err;
    }
  }

  get tls(): TlsMaterial {
    return this.identity.tls;
  }

  /** Records an event and logs it. */
  event(actor: string, kind: string, message: string, data?: Record<string, unknown>): void {
    this.options.log.info({ event: kind, ...data }, message);
    if (this.closed) return;
    try {
      const recorded = recordEvent(this.db, { actor, kind, message, ...(data ? { data } : {}) });
      this.journal?.write(recorded);
      for (const listener of this.eventListeners) listener(recorded);
    } catch (err) {
      // Called from process exit handlers and timers: a full disk must not take the daemon down.
      this.options.log.error({ err, event: kind }, 'could not record the event in the database');
      // The journal still gets it (id 0: not in the database).
      this.journal?.write({ id: 0, at: new Date().toISOString(), actor, kind, message, origin: originOf(actor, data), outcome: /(failed|refused)$/.test(kind) ? 'failure' : 'success' });
    }
  }

  private readonly eventListeners = new Set<(event: ApplianceEvent) => void>();
  /** The system journal, when the box has a syslog socket (daemon/journal.ts). */
  private journal: JournalSink | undefined;

  /** Calls `listener` with each event recorded from now on; returns the unsubscribe function. */
  onEvent(listener: (event: ApplianceEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Starts sending events to the system journal, when there is a syslog socket. Never throws. */
  async openJournal(): Promise<void> {
    this.journal = await openJournal(this.options.config.syslogSocket, this.options.log).catch(() => undefined);
  }

  /** Stops the registries a killed daemon left running on this state dir (they hold our ports). */
  stopOrphans(): Promise<void> {
    return this.fleet.stopOrphans();
  }

  /**
   * Starts both registries (in parallel) and waits until each answers `/v2/`. When one
   * fails, stops the other and throws the first failure in REGISTRY_NAMES order.
   */
  startRegistries(): Promise<void> {
    return this.fleet.start();
  }

  /** The repo address set by setup, or null before the first setup. */
  repoAddress(): string | null {
    return repoAddress(this.db);
  }

  /** URLs, credentials and the CA, as `airgap setup` prints them. */
  connectionDetails(): ConnectionDetails {
    return connectionDetails(this.options.config, publicAddress(this.options.config, this.repoAddress()), this.identity);
  }

  /** Every file a node needs to pull from this appliance (daemon/node-config.ts), from the live setup. */
  nodeConfig(): { files: NodeConfigFile[]; imageRegistry: string; packRegistry: string; upstreams: string[] } {
    const details = this.connectionDetails();
    const hostOf = (url: string) => new URL(url).host;
    const input = {
      imageRegistry: hostOf(details.imageRegistry.url),
      packRegistry: hostOf(details.packRegistry.url),
      imageCredential: this.identity.credentials.imageRegistry,
      packCredential: this.identity.credentials.packRegistry,
      caPem: this.identity.tls.caPem,
      upstreams: [...new Set(imageSources(this.db).map(upstreamOf).filter((u): u is string => u !== undefined))],
    };
    return { files: nodeConfigFiles(input), imageRegistry: input.imageRegistry, packRegistry: input.packRegistry, upstreams: input.upstreams };
  }

  /** The console account with the scrypt hash of its password (the console checks the hash). */
  consoleAccount(): { username: string; passwordHash: string } {
    const row = getCredential(this.db, 'console')!;
    return { username: row.username, passwordHash: row.passwordHash };
  }

  /** The credential of one account (for the repository's basic auth, the console). */
  credential(name: AccountName): Credential {
    return this.identity.credentials[name];
  }

  /** `airgap setup <repo-ip>`, one at a time; see applySetup in setup.ts for what it does and throws. */
  setup(input: string, actor = 'cli', options: SetupOptions = {}): Promise<SetupResult> {
    return this.changes.run(() =>
      applySetup(
        { db: this.db, layout: this.layout, config: this.options.config, identity: this.identity, fleet: this.fleet, event: (...args) => this.event(...args), ...(this.options.onTlsChange ? { onTlsChange: this.options.onTlsChange } : {}) },
        input,
        actor,
        options,
      ),
    );
  }

  /** What the release delete and garbage collection work with (daemon/maintenance.ts). */
  private maintenance(): MaintenanceContext {
    return {
      db: this.db,
      layout: this.layout,
      log: this.options.log.child({ component: 'maintenance' }),
      clients: () => this.fleet.pushTargets(),
      garbageCollect: (name, timeoutMs) => this.fleet.garbageCollect(name, timeoutMs),
      removeUploads: () => this.fleet.removeLeftoversSince(0),
      event: (actor, kind, message, data) => this.event(actor, kind, message, data),
    };
  }

  /** Deletes release `version` and collects garbage, with no import running. Throws as deleteRelease. */
  deleteRelease(version: string, actor: string): Promise<DeleteResult> {
    return this.importer.exclusive(() => this.changes.run(() => deleteRelease(this.maintenance(), version, actor)));
  }

  /** Keeps the current release and the keep-1 newest others, deletes the rest, then collects garbage. Throws as prune. */
  prune(keep: number, actor: string, dryRun: boolean): Promise<PruneResult> {
    return this.importer.exclusive(() => this.changes.run(() => prune(this.maintenance(), keep, actor, dryRun)));
  }

  /**
   * The retention policy of config.yaml (`retention.keep`), applied after each successful
   * import: prune --keep N, with no import running (queued ones wait). Never throws: a
   * bad config.yaml or a failed prune is an event (`retention.failed`).
   */
  async applyRetention(): Promise<PruneResult | undefined> {
    const exclusive = this.importer.exclusive(async () => {
      const settings = await readSettings(this.layout.configFile);
      const keep = settings.retention.keep;
      if (keep === null) return undefined;
      return this.changes.run(() => prune(this.maintenance(), keep, 'retention', false));
    });
    try {
      const result = await exclusive;
      if (result?.deleted.length) this.event('retention', 'retention.applied', `retention (keep ${result.keep}) deleted ${result.deleted.join(', ')}`, { ...result });
      return result;
    } catch (err) {
      // The daemon stopping is no failure of the policy: the next import applies it.
      if ((err as { code?: string }).code === 'AG_DAEMON_DOWN') return undefined;
      this.options.log.error({ err }, 'the retention policy could not be applied');
      this.event('retention', 'retention.failed', `the retention policy could not be applied: ${(err as Error).message}`, { code: (err as { code?: string }).code ?? null });
      return undefined;
    }
  }

  /** Collects garbage in both registries, with no import running. Throws as garbageCollect. */
  collectGarbage(actor: string): Promise<GcResult> {
    return this.importer.exclusive(() => this.changes.run(() => garbageCollect(this.maintenance(), actor)));
  }

  /**
   * Writes a backup of the state (and with `withData` the registries' storage and the
   * repositories) to the absolute path `out`, with no import or garbage collection
   * running. Records a `backup.written` event. Throws as writeBackupFile.
   */
  backup(out: string, withData: boolean, actor: string): Promise<BackupResult> {
    const write = async () => {
      const result = await writeBackupFile(this.layout, out, { withData, airgapVersion: this.options.version, db: this.db });
      this.event(actor, 'backup.written', `wrote a backup${withData ? ' with data' : ''} to ${out} (${result.bytes} bytes)`, { ...result });
      return result;
    };
    // The state alone is consistent as it is (SQLite's online backup): imports go on. With
    // the data, the registries' storage and the repositories must hold still.
    return withData ? this.importer.exclusive(() => this.changes.run(write)) : write();
  }

  private downloading = false;

  /**
   * Streams a backup of the state (no data) into `sink`, for the console's download; one
   * at a time (BackupError AG_BACKUP_BUSY). Recorded as an event before the first byte.
   * Imports keep running: the database snapshot is SQLite's online backup. Throws as writeBackup.
   */
  backupTo(sink: Writable, actor: string): Promise<void> {
    // Thrown at once (not as a rejection), so the console answers 409 before any byte.
    if (this.downloading) throw new AirgapError('AG_BACKUP_BUSY', 'a backup is being downloaded already', { hint: 'wait for it to finish' });
    this.downloading = true;
    this.event(actor, 'backup.downloaded', `${actor} downloads a backup of the state (CA key and passwords included)`);
    return writeBackup(this.layout, sink, { withData: false, airgapVersion: this.options.version, db: this.db })
      .then(() => undefined)
      .finally(() => (this.downloading = false));
  }

  /** Finishes work a stop interrupted (a release delete); call once the registries run. Never throws: a failure is an event. */
  async finishPendingWork(): Promise<void> {
    await this.importer
      .exclusive(() => this.changes.run(() => finishPendingDelete(this.maintenance())))
      .catch((err: unknown) => {
        this.options.log.error({ err }, 'could not finish an interrupted release delete');
        this.event('daemon', 'release.delete_failed', `could not finish an interrupted release delete: ${(err as Error).message}`);
      });
  }

  /** Health of every part. Never throws for an unhealthy part: it is reported. */
  status(): Promise<ApplianceStatus> {
    return readStatus({ config: this.options.config, layout: this.layout, db: this.db, fleet: this.fleet, version: this.options.version, startedAt: this.startedAt, identity: this.identity });
  }

  /** The Prometheus text of GET /metrics (daemon/metrics.ts). Never throws for an unhealthy part. */
  async metrics(): Promise<string> {
    const status = await this.status();
    return renderMetrics({ db: this.db, version: this.options.version, registries: status.registries, disk: status.disk, certificate: this.identity.certificate });
  }

  /** Stops the registries, closes the database and releases the state dir. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.importer.close();
    await this.fleet.stop();
    this.event('daemon', 'daemon.stopped', 'the daemon stopped');
    this.closed = true;
    this.eventListeners.clear();
    await this.journal?.close();
    this.db.close();
    await releaseStateDir(this.layout);
  }
}
