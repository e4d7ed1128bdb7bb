/**
 * `airgap serve`: opens the appliance, starts the registries, and listens: HTTPS and HTTP
 * on the configured address, the admin API on the unix socket (mode 0600). It says it is
 * ready only after the start-up self-check (state dir writable, database migrated,
 * both registries answering `/v2/` over TLS).
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AirgapError } from '../../installer/src/errors.js';
import { hostPort, httpsUrl } from './address.js';
import { Appliance } from './appliance.js';
import { buildAdminApp, buildPublicApp, buildRedirectApp } from './app.js';
import type { ServeConfig } from './config.js';
import { listEvents } from './store/events.js';

export class ListenError extends AirgapError {}

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

/**
 * Starts the daemon for `config`. On failure it undoes what it started (registries,
 * listeners, the state dir lock) and throws the typed error.
 */
export async function startServer(config: ServeConfig, log: Logger, version: string): Promise<RunningServer> {
  const ports: Array<[number, string]> = [
    [config.httpsPort, '--https-port'],
    [config.httpPort, '--http-port'],
    [config.registryPort, '--registry-port'],
    [config.packRegistryPort, '--pack-registry-port'],
  ];
  let publicApp: FastifyInstance | undefined;
  const appliance = await Appliance.open({
    config,
    log,
    version,
    onTlsChange: (tls) => {
      (publicApp?.server as HttpsServer | undefined)?.setSecureContext({ key: tls.keyPem, cert: tls.certPem, minVersion: 'TLSv1.2' });
      log.info('HTTPS server certificate reloaded');
    },
  });
  const apps: FastifyInstance[] = [];
  const close = async () => {
    for (const app of apps.reverse()) await app.close().catch((err: unknown) => log.error({ err }, 'closing a listener failed'));
    apps.length = 0;
    await unlink(appliance.layout.adminSocket).catch(() => {});
    await appliance.close();
  };
  try {
    await appliance.stopOrphans();
    for (const [port, flag] of ports) await assertPortFree(config.address, port, flag);
    await appliance.startRegistries();

    publicApp = await buildPublicApp({
      log: log.child({ listener: 'https' }),
      repoDir: appliance.layout.repoDir,
      repositoryCredential: () => appliance.credential('repository'),
      caPem: () => appliance.tls.caPem,
      tls: { key: appliance.tls.keyPem, cert: appliance.tls.certPem },
    });
    apps.push(publicApp);
    await publicApp.listen({ host: config.address, port: config.httpsPort });

    const redirectApp = await buildRedirectApp({
      log: log.child({ listener: 'http' }),
      httpsPort: config.httpsPort,
      caPem: () => appliance.tls.caPem,
      fallbackHost: () => appliance.repoAddress() ?? '127.0.0.1',
    });
    apps.push(redirectApp);
    await redirectApp.listen({ host: config.address, port: config.httpPort });

    const adminApp = await buildAdminApp({
      log: log.child({ listener: 'admin' }),
      operations: {
        status: () => appliance.status(),
        setup: (address, actor) => appliance.setup(address, actor),
        events: (limit) => listEvents(appliance.db, { limit }),
      },
    });
    apps.push(adminApp);
    // We hold the state dir lock, so a socket file here is a dead daemon's.
    await unlink(appliance.layout.adminSocket).catch(() => {});
    await adminApp.listen({ path: appliance.layout.adminSocket });
    await chmod(appliance.layout.adminSocket, 0o600);
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
