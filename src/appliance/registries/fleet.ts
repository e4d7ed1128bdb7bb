/**
 * The two bundled registries (images, packs) as one fleet: their supervisors, the files
 * they read (config.yml, htpasswd), orphans a killed daemon left, start and stop,
 * restarting the ones whose files changed, health, and push clients for the importer.
 * Knows nothing of the database or HTTP: the appliance hands it the TLS material,
 * credentials and the registries' HTTP secret.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../kit/fs.js';
import { httpsUrl } from '../config/address.js';
import { loopbackFor, type ServeConfig } from '../config/config.js';
import { REGISTRY_NAMES, type RegistryName, type StateLayout } from '../config/state-layout.js';
import { htpasswdFor, type AccountName, type Credential } from '../security/credentials.js';
import type { TlsMaterial } from '../security/pki.js';
import { renderRegistryConfig } from './registry-config.js';
import { SupervisedRegistry, probeHttps, stopOrphan, type RegistryStatus } from './supervisor.js';
import { RegistryClient, type PushTarget } from '../../oci/client.js';
import { StorageTarget } from './storage-target.js';

/** Bytes of the regular files under `dir` (0 when it is missing). */
/**
 * Removes the repositories under `root` (CNCF distribution's `repositories/` folder) that
 * hold no manifest revision (`_manifests/revisions/<alg>/<hex>/link`): their `_manifests`,
 * `_layers` and `_uploads` folders, then parent folders left empty. A repository's folder
 * may hold nested repositories (`apps/app` and `apps/app/sub`): only its own `_` folders
 * go. Call only while the registry is stopped. Returns how many were removed.
 */
export async function removeEmptyRepositories(root: string): Promise<number> {
  let removed = 0;
  // Only "not there" means empty: any other error (EIO, EACCES) stops the removal.
  const missing = <T>(fallback: T) => (err: NodeJS.ErrnoException): T => {
    if (err.code === 'ENOENT') return fallback;
    throw err;
  };
  const hasRevision = async (repo: string): Promise<boolean> => {
    const revisions = join(repo, '_manifests', 'revisions');
    for (const alg of await readdir(revisions).catch(missing([] as string[]))) {
      for (const hex of await readdir(join(revisions, alg)).catch(missing([] as string[]))) {
        if (await stat(join(revisions, alg, hex, 'link')).then((s) => s.isFile(), missing(false))) return true;
      }
    }
    return false;
  };
  const walk = async (dir: string): Promise<boolean> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(missing([]));
    const own = entries.filter((e) => e.isDirectory() && (e.name === '_manifests' || e.name === '_layers' || e.name === '_uploads'));
    if (own.length && !(await hasRevision(dir))) {
      for (const e of own) await rm(join(dir, e.name), { recursive: true, force: true });
      removed++;
    }
    let empty = true;
    for (const e of entries) {
      if (!e.isDirectory()) {
        empty = false;
        continue;
      }
      if (e.name.startsWith('_')) {
        if (await stat(join(dir, e.name)).then(() => true, () => false)) empty = false;
        continue;
      }
      if (await walk(join(dir, e.name))) await rm(join(dir, e.name), { recursive: true, force: true }).catch(() => {});
      else empty = false;
    }
    return empty;
  };
  await walk(root);
  return removed;
}

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(path);
    else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

export interface FleetOptions {
  config: ServeConfig;
  layout: StateLayout;
  log: Logger;
  /** The TLS material now (setup may re-issue the server certificate; the CA stays). */
  tls: () => TlsMaterial;
  /** Every account's credential; the fleet uses the two registry accounts. */
  credentials: Record<AccountName, Credential>;
  /** The `http.secret` both registries share. */
  httpSecret: string;
  /**
   * The name the daemon's own clients (over loopback) check the server certificate
   * against: the repo address when the certificate is the site's (it need not name
   * loopback); undefined for the appliance's own, which names loopback.
   */
  serverName?: () => string | undefined;
  /** Called for events worth keeping in the event log (the daemon is their actor). */
  onEvent: (kind: string, message: string, data?: Record<string, unknown>) => void;
}

/** One registry in the status document. */
export type RegistryHealth = RegistryStatus & { url: string; healthy: boolean; version: string };

/** What restartStale did. */
export interface RestartOutcome {
  /** Registries whose running process started from other files, in REGISTRY_NAMES order. */
  attempted: RegistryName[];
  /** Those of them that came back. */
  restarted: RegistryName[];
  /** The first failed restart, in REGISTRY_NAMES order. */
  failed?: PromiseRejectedResult;
}

function registryPort(config: ServeConfig, name: RegistryName): number {
  return name === 'images' ? config.registryPort : config.packRegistryPort;
}

function registryAccount(name: RegistryName): AccountName {
  return name === 'images' ? 'imageRegistry' : 'packRegistry';
}

/** The version `binary --version` prints last, or 'unknown'. */
async function registryVersion(binary: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: 5000 });
    return stdout.trim().split(/\s+/).pop() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The images and packs registries, supervised together; see the module comment. */
export class RegistryFleet {
  private readonly registries: Record<RegistryName, SupervisedRegistry>;
  private registryVersion = 'unknown';

  /** Makes the supervisors; starts nothing and writes nothing. */
  constructor(private readonly options: FleetOptions) {
    const { config, layout, log } = options;
    const host = loopbackFor(config.address);
    this.registries = Object.fromEntries(
      REGISTRY_NAMES.map((name) => {
        const paths = layout.registry(name);
        return [
          name,
          new SupervisedRegistry({
            name,
            binary: config.registryBinary,
            configPath: paths.config,
            pidFile: paths.pidFile,
            probeUrl: `${httpsUrl(host, registryPort(config, name))}/v2/`,
            caPem: () => this.tlsMaterial.caPem,
            serverName: () => this.options.serverName?.(),
            credential: () => this.credentials[registryAccount(name)],
            log: log.child({ registry: name }),
            onEvent: (kind, message, data) => options.onEvent(kind, message, data),
            fingerprint: () => this.fingerprint(name),
            stallSeconds: config.registryStallSeconds,
          }),
        ];
      }),
    ) as Record<RegistryName, SupervisedRegistry>;
  }

  private get tlsMaterial(): TlsMaterial {
    return this.options.tls();
  }

  private get credentials(): Record<AccountName, Credential> {
    return this.options.credentials;
  }

  /**
   * Push targets for imports into the bundled registries: blobs written into their storage
   * (storage-target.ts, ADR 0008) unless the config says `http`; manifests and tags over
   * loopback HTTPS either way. `signal` ends their requests.
   */
  importTargets(signal?: AbortSignal): Record<RegistryName, PushTarget> {
    const http = this.pushTargets(signal);
    if (this.options.config.importBlobs === 'http') return http;
    const make = (name: RegistryName) => {
      const paths = this.options.layout.registry(name);
      return new StorageTarget({ root: paths.data, incoming: paths.incoming, http: http[name] });
    };
    return { images: make('images'), packs: make('packs') };
  }

  /** Push clients for the bundled registries, over loopback, trusting the appliance CA; `signal` ends their requests. */
  pushTargets(signal?: AbortSignal): Record<RegistryName, RegistryClient> {
    const host = loopbackFor(this.options.config.address);
    const make = (name: RegistryName) =>
      new RegistryClient({
        registry: httpsUrl(host, registryPort(this.options.config, name)),
        caPem: this.tlsMaterial.caPem,
        ...(this.options.serverName?.() ? { serverName: this.options.serverName()! } : {}),
        credentials: this.credentials[registryAccount(name)],
        access: 'push',
        label: `${name} registry`,
        maxSockets: 16, // as many as an import's manifest lanes (IMPORT_MANIFEST_LANES)
        ...(signal ? { signal } : {}),
      });
    return { images: make('images'), packs: make('packs') };
  }

  /**
   * Runs CNCF distribution's own `garbage-collect` on registry `name`'s storage while the
   * registry is stopped (pulls fail for that window), then starts it again and waits for
   * its health check, whatever GC did. Untagged manifests are kept (no
   * --delete-untagged: distribution would also take the children of multi-arch indexes).
   * Returns the storage's bytes before and after. Throws when GC fails (after the restart).
   */
  async garbageCollect(name: RegistryName, timeoutMs: number): Promise<{ bytesBefore: number; bytesAfter: number; seconds: number; repositoriesRemoved: number }> {
    const paths = this.options.layout.registry(name);
    const bytesBefore = await treeBytes(paths.data);
    const started = Date.now();
    await this.registries[name].stop();
    let failure: Error | undefined;
    try {
      // garbage-collect fails on a storage without these (a registry nothing was pushed to, or
      // whose last repository went): with them empty it marks nothing and sweeps every blob.
      for (const part of ['repositories', 'blobs']) await mkdir(join(paths.data, 'docker', 'registry', 'v2', part), { recursive: true, mode: 0o700 });
      // Its output is every blob and manifest it marks: no buffer limit to kill it part-way.
      const child = spawn(this.options.config.registryBinary, ['garbage-collect', paths.config], { stdio: ['ignore', 'ignore', 'pipe'] });
      const ended = new Promise<void>((resolve, reject) => {
        let tail = '';
        child.stderr.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-2000)));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.on('error', (err) => (clearTimeout(timer), reject(err)));
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) resolve();
          else reject(new Error(`garbage-collect of the ${name} registry ended with ${signal ?? `code ${code}`}: ${tail.trim().split('\n').pop() ?? ''}`));
        });
      });
      // A daemon killed meanwhile stops this run at its next start (stopOrphans), before the registry serves again.
      if (child.pid) await writeFile(paths.gcPidFile, `${child.pid}\n`, { mode: 0o600 }).catch(() => {});
      await ended;
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    await unlink(paths.gcPidFile).catch(() => {});
    // Repositories with no manifest left (a deleted release's, a failed import's): out of
    // _catalog, while the registry is stopped and cannot be writing into them.
    const repositoriesRemoved = failure ? 0 : await removeEmptyRepositories(join(paths.data, 'docker', 'registry', 'v2', 'repositories')).catch((err: unknown) => {
      this.options.log.warn({ err, registry: name }, 'could not remove empty repositories');
      return 0;
    });
    // Started again whatever GC did; a start that fails is tried again before giving up.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.registries[name].start();
        break;
      } catch (err) {
        if (attempt >= 3) throw new Error(`the ${name} registry did not start again after garbage collection: ${(err as Error).message}${failure ? ` (and GC failed: ${failure.message})` : ''}`, { cause: err });
        await new Promise((r) => setTimeout(r, 2000 * attempt));
      }
    }
    if (failure) throw failure;
    return { bytesBefore, bytesAfter: await treeBytes(paths.data), seconds: (Date.now() - started) / 1000, repositoriesRemoved };
  }

  /**
   * Removes what a failed import can leave in both registries' storage: upload sessions
   * (`_uploads/<id>/` folders under each repository) started at or after `sinceMs`, which
   * the registry would purge only after a week, and empty `link` files, which a full disk
   * leaves when the registry could not write them and which it then answers with 500,
   * and the temp files of blobs and links an import wrote into the storage. Imports run one at a time, so the only uploads of that window are the import's own (a
   * client pushing to the bundled registry at that moment would have to start its upload
   * again). Returns how many were removed; never throws.
   */
  async removeLeftoversSince(sinceMs: number): Promise<number> {
    let removed = 0;
    const remove = async (path: string, recursive: boolean) => {
      if (await rm(path, { recursive, force: true }).then(() => true, () => false)) removed++;
    };
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, entry.name);
        if (entry.isFile() && entry.name === 'link') {
          if ((await stat(path).catch(() => undefined))?.size === 0) await remove(path, false);
        } else if (entry.isDirectory() && entry.name === '_uploads') {
          for (const upload of await readdir(path, { withFileTypes: true }).catch(() => [])) {
            const uploadDir = join(path, upload.name);
            if (upload.isDirectory() && ((await stat(uploadDir).catch(() => undefined))?.mtimeMs ?? 0) >= sinceMs - 1000) await remove(uploadDir, true);
          }
        } else if (entry.isDirectory()) await walk(path);
      }
    };
    for (const name of REGISTRY_NAMES) {
      const paths = this.options.layout.registry(name);
      await walk(join(paths.data, 'docker', 'registry', 'v2', 'repositories'));
      // Temp files of blobs and links written into the storage (storage-target.ts).
      for (const entry of await readdir(paths.incoming, { withFileTypes: true }).catch(() => [])) {
        const path = join(paths.incoming, entry.name);
        if (((await stat(path).catch(() => undefined))?.mtimeMs ?? 0) >= sinceMs - 1000) await remove(path, true);
      }
    }
    return removed;
  }

  /** Asks the registry binary for its version once (status shows it); never throws. */
  async readVersion(): Promise<void> {
    this.registryVersion = await registryVersion(this.options.config.registryBinary);
  }

  /** A digest of every file a registry reads; a running registry started from others needs a restart. */
  private async fingerprint(name: RegistryName): Promise<string> {
    const { layout } = this.options;
    const paths = layout.registry(name);
    const hash = createHash('sha256');
    for (const file of [paths.config, paths.htpasswd, layout.serverCert, layout.serverKey]) {
      hash.update(await readFile(file).catch(() => Buffer.alloc(0)));
      hash.update('\0');
    }
    return hash.digest('hex');
  }

  /**
   * Writes each registry's config.yml and htpasswd (0600) when their content differs
   * (which registries then need a restart is told by their fingerprints, not by this).
   * Throws the file system's errors.
   */
  async writeFiles(): Promise<void> {
    const { layout, config } = this.options;
    for (const name of REGISTRY_NAMES) {
      const paths = layout.registry(name);
      await mkdir(paths.data, { recursive: true, mode: 0o700 });
      const rendered = renderRegistryConfig({
        name,
        paths,
        address: config.address,
        port: registryPort(config, name),
        serverCert: layout.serverCert,
        serverKey: layout.serverKey,
        httpSecret: this.options.httpSecret,
      });
      const currentHtpasswd = await readFile(paths.htpasswd, 'utf8').catch(() => undefined);
      const htpasswd = htpasswdFor(this.credentials[registryAccount(name)], currentHtpasswd);
      if ((await readFile(paths.config, 'utf8').catch(() => undefined)) !== rendered) await writeFileAtomic(paths.config, rendered, 0o600);
      if (currentHtpasswd !== htpasswd) await writeFileAtomic(paths.htpasswd, htpasswd, 0o600);
    }
  }

  /** Stops the registries a killed daemon left running on this state dir (they hold our ports). */
  async stopOrphans(): Promise<void> {
    await Promise.all(
      REGISTRY_NAMES.map(async (name) => {
        const paths = this.options.layout.registry(name);
        const orphan = await stopOrphan(paths.pidFile, paths.config);
        if (orphan) this.options.onEvent('registry.orphan_stopped', `stopped the ${name} registry (pid ${orphan}) an earlier daemon left running`, { registry: name, pid: orphan });
        // A garbage collection a killed daemon left running: stopped before the registry serves
        // again, or it would sweep blobs an import pushes meanwhile. What it swept is garbage;
        // what it did not sweep waits for the next gc.
        const gc = await stopOrphan(paths.gcPidFile, paths.config);
        if (gc) this.options.onEvent('gc.orphan_stopped', `stopped the garbage collection of the ${name} registry (pid ${gc}) an earlier daemon left running`, { registry: name, pid: gc });
      }),
    );
  }

  /**
   * Starts both registries (in parallel) and waits until each answers `/v2/`. When one
   * fails, stops the other and throws the first failure in REGISTRY_NAMES order
   * (RegistryStartError).
   */
  async start(): Promise<void> {
    const results = await Promise.allSettled(REGISTRY_NAMES.map((name) => this.registries[name].start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failed) return;
    await this.stop();
    throw failed.reason;
  }

  /** Stops both registries; resolves when their processes are gone. */
  async stop(): Promise<void> {
    await Promise.all(REGISTRY_NAMES.map((name) => this.registries[name].stop()));
  }

  /**
   * Restarts (in parallel) every registry whose running process started from other
   * files than those on disk now: changed by the caller, or left behind by an earlier
   * restart that failed. Never throws: a failed restart is in the outcome.
   */
  async restartStale(): Promise<RestartOutcome> {
    const attempted: RegistryName[] = [];
    for (const name of REGISTRY_NAMES) {
      if (this.registries[name].startedWith !== (await this.fingerprint(name))) attempted.push(name);
    }
    const outcomes = await Promise.allSettled(attempted.map((name) => this.registries[name].restart()));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    const restarted = attempted.filter((_, i) => outcomes[i]!.status === 'fulfilled');
    return { attempted, restarted, ...(failed ? { failed } : {}) };
  }

  /** One line per registry that is not running (the importer refuses to start then). */
  notRunning(): string[] {
    return REGISTRY_NAMES.filter((name) => this.registries[name].status().state !== 'running').map((name) => `the ${name} registry is ${this.registries[name].status().state}`);
  }

  /**
   * Each registry's supervisor state, whether it answers `/v2/` over TLS now, and its
   * URL on `address` (the public address); `problems` has a line per unhealthy one.
   * Never throws for an unhealthy registry.
   */
  async health(address: string): Promise<{ registries: RegistryHealth[]; problems: string[] }> {
    const { config } = this.options;
    const problems: string[] = [];
    const registries = await Promise.all(
      REGISTRY_NAMES.map(async (name) => {
        const s = this.registries[name].status();
        let healthy = false;
        if (s.state === 'running') {
          healthy = await probeHttps(`${httpsUrl(loopbackFor(config.address), registryPort(config, name))}/v2/`, this.tlsMaterial.caPem, this.credentials[registryAccount(name)], undefined, this.options.serverName?.()).then(
            (code) => code === 200,
            () => false,
          );
        }
        if (!healthy) problems.push(`the ${name} registry is ${s.state === 'running' ? 'not answering' : s.state}`);
        return { ...s, url: httpsUrl(address, registryPort(config, name)), healthy, version: this.registryVersion };
      }),
    );
    return { registries, problems };
  }
}
