/**
 * `airgap serve`: opens the appliance, starts the registries, and listens: HTTPS and HTTP
 * on the configured address, the admin API on the unix socket (mode 0600). It says it is
 * ready only after the start-up self-check (state dir writable, database migrated,
 * both registries answering `/v2/` over TLS).
 */
import { setFlagsFromString } from 'node:v8';
import { chmod, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { AirgapError, UsageError } from '../../kit/errors.js';
import { hostPort, httpsUrl } from '../config/address.js';
import { Appliance, certificateNames } from './appliance.js';
import { buildAdminApp, buildPublicApp, buildRedirectApp } from '../http/app.js';
import type { ServeConfig } from '../config/config.js';
import { listEvents } from '../store/events.js';
import { InboxWatcher } from './inbox.js';
import { listImports, type ImportRow } from '../store/imports.js';
import { listArtifacts, listReleases, type ArtifactKind } from '../store/releases.js';
import { diffReleases, sideOf } from './release-diff.js';
import type { Writable } from 'node:stream';
import { releasesDocument } from '../import/commit.js';
import { contentLists } from './content-lists.js';
import type { Importer, ImportUpdate } from '../import/runner.js';
import { dirname, isAbsolute, join } from 'node:path';
import { access, constants, stat, statfs } from 'node:fs/promises';
import type { ConsoleOperations } from '../http/operations.js';

export class ListenError extends AirgapError {}

/** What the daemon needs of a built HTTP app (http/app.ts builds them): listen, close, its node server. */
interface Listener {
  listen(options: { host: string; port: number } | { path: string }): Promise<unknown>;
  close(): Promise<unknown>;
  readonly server: unknown;
}

export interface RunningServer {
  appliance: Appliance;
  /** Stops listeners, then the registries; closes the database. Idempotent. */
  close(): Promise<void>;
}

/** Resolves when `port` on `address` can be bound; throws ListenError AG_PORT_IN_USE otherwise. */
export async function assertPortFree(address: string, port: number, flag: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new ListenError('AG_PORT_IN_USE', `port ${port} on ${address} is already in use`, { hint: `stop the program that holds it (ss -ltnp 'sport = :${port}'), or choose another port with ${flag}` }));
      } else if (err.code === 'EACCES') {
        reject(new ListenError('AG_PORT_DENIED', `port ${port} on ${address} needs root`, { hint: `run as root, or choose a port above 1023 with ${flag}` }));
      } else if (err.code === 'EADDRNOTAVAIL') {
        reject(new ListenError('AG_ADDRESS', `${address} is not an address of this machine`, { hint: 'pass --address with one of its addresses, or 0.0.0.0' }));
      } else reject(err);
    });
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** The console's static files: `web/` of the release (found upward from this module). */
async function findWebDir(): Promise<string | undefined> {
  let dir = import.meta.dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'web');
    if (await stat(join(candidate, 'index.html')).then((s) => s.isFile(), () => false)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/** The console API's view of the appliance. */
function consoleOperations(appliance: Appliance, config: ServeConfig): ConsoleOperations {
  return {
    consoleAccount: () => appliance.consoleAccount(),
    consoleOrigins: () => certificateNames(config, appliance.repoAddress() ?? undefined).map((name) => new URL(httpsUrl(name, config.httpsPort)).origin),
    status: () => appliance.status(),
    connectionDetails: () => appliance.connectionDetails(),
    caPem: () => appliance.tls.caPem,
    ...contentLists(appliance.db),
    listImports: (limit) => listImports(appliance.db, limit),
    getImport: (id) => appliance.importer.get(id),
    followImport: (id, onUpdate, onDone) => followImport(appliance.importer, id, onUpdate, onDone),
    queueUpload: (file, actor, allowDowngrade) => {
      const row = appliance.importer.enqueue({ file, source: 'upload', actor, options: { allowDowngrade } });
      return { import: row, queuePosition: appliance.importer.snapshot(row.id)?.queuePosition ?? 0 };
    },
    events: (limit) => listEvents(appliance.db, { limit }),
    recordEvent: (actor, kind, message, data) => appliance.event(actor, kind, message, data),
    uploadsDir: appliance.layout.uploadsDir,
    freeBytes: async (dir) => {
      const fs = await statfs(dir);
      return fs.bavail * fs.bsize;
    },
    maxUploadBytes: config.maxUploadBytes,
    deleteRelease: (version, actor) => appliance.deleteRelease(version, actor),
    collectGarbage: (actor) => appliance.collectGarbage(actor),
    diff: (from, to) => {
      const versions = listReleases(appliance.db).map((r) => r.version);
      for (const v of [from, to]) if (!versions.includes(v)) throw new UsageError(`there is no release ${v} on the box`, { hint: `releases here: ${versions.join(', ') || 'none'}` });
      return diffReleases(from, to, sideOf(listArtifacts(appliance.db, { version: from })), sideOf(listArtifacts(appliance.db, { version: to })));
    },
    backupTo: (sink, actor) => appliance.backupTo(sink as Writable, actor),
    nodeConfigFiles: () => appliance.nodeConfig().files,
  };
}

/** app.listen, with the errors of assertPortFree when the port was taken meanwhile. */
async function listenOn(app: Listener, address: string, port: number, flag: string): Promise<void> {
  try {
    await app.listen({ host: address, port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') await assertPortFree(address, port, flag);
    throw err;
  }
}

/** The file an admin asks to import: an absolute path to a readable regular file. */
async function checkImportFile(file: string): Promise<string> {
  if (!isAbsolute(file)) throw new AirgapError('AG_USAGE', `the file to import must be an absolute path, not '${file}'`);
  const s = await stat(file).catch(() => undefined);
  if (!s) throw new AirgapError('AG_NOT_FOUND', `there is no file ${file}`, { hint: 'check the path; the daemon reads the file itself' });
  if (!s.isFile()) throw new AirgapError('AG_USAGE', `${file} is not a regular file`);
  await access(file, constants.R_OK).catch((cause: unknown) => {
    throw new AirgapError('AG_NOT_FOUND', `the daemon cannot read ${file}`, { cause, hint: 'make it readable by the daemon user' });
  });
  return file;
}

/** Subscribes to one import's updates; see AdminOperations.followImport. */
function followImport(importer: Importer, id: number, onUpdate: (u: ImportUpdate) => void, onDone: (row: ImportRow) => void): () => void {
  const update = (u: ImportUpdate | undefined) => {
    if (u?.importId === id) onUpdate(u);
  };
  const finished = (row: ImportRow | undefined) => {
    if (row?.id !== id) return;
    unsubscribe();
    onDone(row);
  };
  const unsubscribe = () => {
    importer.off('update', update);
    importer.off('finished', finished);
  };
  importer.on('update', update);
  importer.on('finished', finished);
  const now = importer.snapshot(id);
  if (now) onUpdate(now);
  else {
    const row = importer.get(id);
    if (row && row.state !== 'queued' && row.state !== 'running') finished(row);
  }
  return unsubscribe;
}

/**
 * V8 grows the heap by 30 % over the live size between full collections instead of by
 * up to 4x: the daemon shares a 4 GB box with two registries, and an import of a large
 * release makes a burst of short-lived objects. Measured on a 100,000-file release: peak
 * RSS 436 MB -> 261 MB, the same import time (docs/architecture.md, section 6, point 12).
 */
const HEAP_GROWING_FLAG = '--heap-growing-percent=30';

/**
 * Starts the daemon for `config`. On failure it undoes what it started (registries,
 * listeners, the state dir lock) and throws the typed error.
 */
export async function startServer(config: ServeConfig, log: Logger, version: string): Promise<RunningServer> {
  setFlagsFromString(HEAP_GROWING_FLAG);
  const ports: Array<[number, string]> = [
    [config.httpsPort, '--https-port'],
    [config.httpPort, '--http-port'],
    [config.registryPort, '--registry-port'],
    [config.packRegistryPort, '--pack-registry-port'],
  ];
  let publicApp: Listener | undefined;
  const appliance = await Appliance.open({
    config,
    log,
    version,
    onTlsChange: (tls) => {
      (publicApp?.server as HttpsServer | undefined)?.setSecureContext({ key: tls.keyPem, cert: tls.certPem, minVersion: 'TLSv1.2' });
      log.info('HTTPS server certificate reloaded');
    },
  });
  const apps: Listener[] = [];
  let stopInbox = async () => {};
  const close = async () => {
    await stopInbox();
    // Listeners get 5 s; the registries are stopped whatever happens to them.
    const closing = Promise.all(apps.reverse().map((app) => app.close().catch((err: unknown) => log.error({ err }, 'closing a listener failed'))));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5000).unref())]);
    apps.length = 0;
    await unlink(appliance.layout.adminSocket).catch(() => {});
    await appliance.close();
  };
  try {
    await appliance.openJournal();
    await appliance.stopOrphans();
    for (const [port, flag] of ports) await assertPortFree(config.address, port, flag);
    await appliance.startRegistries();
    await appliance.finishPendingWork();

    const webDir = await findWebDir();
    publicApp = await buildPublicApp({
      log: log.child({ listener: 'https' }),
      repoDir: appliance.layout.repoDir,
      chartsDir: appliance.layout.chartsDir,
      repositoryCredential: () => appliance.credential('repository'),
      caPem: () => appliance.tls.caPem,
      tls: { key: appliance.tls.keyPem, cert: appliance.tls.certPem },
      api: consoleOperations(appliance, config),
      metrics: {
        render: () => appliance.metrics(),
        credential: () => appliance.credential('console'),
        // The console account's password, tried and refused: a refused console login.
        onRefused: (client, username) => appliance.event(client, 'console.login_failed', `metrics login refused for '${username.slice(0, 64)}'`, { client }),
      },
      nodeConfig: () => appliance.nodeConfig().files,
      ...(webDir ? { webDir } : {}),
    });
    apps.push(publicApp);
    await listenOn(publicApp, config.address, config.httpsPort, '--https-port');

    const redirectApp = await buildRedirectApp({
      log: log.child({ listener: 'http' }),
      httpsPort: config.httpsPort,
      caPem: () => appliance.tls.caPem,
      repoAddress: () => appliance.repoAddress(),
      fallbackHost: () => (config.address === '0.0.0.0' || config.address === '::' ? '127.0.0.1' : config.address),
    });
    apps.push(redirectApp);
    await listenOn(redirectApp, config.address, config.httpPort, '--http-port');

    const adminApp = await buildAdminApp({
      log: log.child({ listener: 'admin' }),
      operations: {
        status: () => appliance.status(),
        setup: (address, actor, options) => appliance.setup(address, actor, options),
        events: (limit, options) => listEvents(appliance.db, { limit, ...options }),
        followEvents: (onEvent) => appliance.onEvent(onEvent),
        queueImport: async (request, actor) => {
          const file = await checkImportFile(request.file);
          const row = appliance.importer.enqueue({ file, source: 'cli', actor, options: { allowDowngrade: request.allowDowngrade } });
          return { import: row, queuePosition: appliance.importer.snapshot(row.id)?.queuePosition ?? 0 };
        },
        listImports: (limit) => listImports(appliance.db, limit),
        getImport: (id) => appliance.importer.get(id),
        cancelImport: (id, actor) => appliance.importer.cancel(id, actor),
        followImport: (id, onUpdate, onDone) => followImport(appliance.importer, id, onUpdate, onDone),
        releases: (options) => releasesDocument(appliance.db, options),
        artifacts: (kind, version) => listArtifacts(appliance.db, { ...(kind ? { kind: kind as ArtifactKind } : {}), ...(version ? { version } : {}) }),
        connectionDetails: () => appliance.connectionDetails(),
        deleteRelease: (version, actor) => appliance.deleteRelease(version, actor),
        collectGarbage: (actor) => appliance.collectGarbage(actor),
        prune: (keep, actor, dryRun) => appliance.prune(keep, actor, dryRun),
        backup: (out, withData, actor) => appliance.backup(out, withData, actor),
        nodeConfig: () => appliance.nodeConfig(),
      },
    });
    apps.push(adminApp);
    // We hold the state dir lock, so a socket file here is a dead daemon's.
    await unlink(appliance.layout.adminSocket).catch(() => {});
    await adminApp.listen({ path: appliance.layout.adminSocket });
    await chmod(appliance.layout.adminSocket, 0o600);
    const resumed = appliance.importer.resumeUnfinished();
    if (resumed) log.warn({ imports: resumed }, `resuming ${resumed} import(s) the last run of the daemon left unfinished`);
    const inbox = new InboxWatcher({
      dir: appliance.layout.inboxDir,
      importer: appliance.importer,
      log: log.child({ component: 'inbox' }),
      onEvent: (actor, kind, message, data) => appliance.event(actor, kind, message, data),
    });
    await inbox.start();
    stopInbox = () => inbox.stop();
  } catch (err) {
    await close();
    throw err;
  }
  const details = appliance.connectionDetails();
  appliance.event('daemon', 'daemon.started', `airgap ${version} ready`, {
    pid: process.pid,
    https: hostPort(config.address, config.httpsPort),
    http: hostPort(config.address, config.httpPort),
    registries: [details.imageRegistry.url, details.packRegistry.url],
  });
  log.info(
    { repository: details.repository.url, imageRegistry: details.imageRegistry.url, packRegistry: details.packRegistry.url, adminSocket: appliance.layout.adminSocket },
    `ready: ${httpsUrl(config.address, config.httpsPort)}; run 'airgap setup <repo-ip>' for the connection details`,
  );
  return { appliance, close };
}
