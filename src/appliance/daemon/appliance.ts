/**
 * The appliance at run time: state dir, database, PKI, credentials and the two
 * supervised registries, and the operations the admin API and the console call
 * (setup, status). Plain domain code: it knows nothing of HTTP; server.ts wires it to
 * Fastify.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, statfs, chmod, unlink } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { AirgapError } from '../../kit/errors.js';
import { writeFileAtomic } from '../../kit/fs.js';
import { addressWarnings, httpsUrl, isWildcardAddress, parseRepoAddress } from '../config/address.js';
import { loopbackFor, type ServeConfig } from '../config/config.js';
import { ensureCredentials, htpasswdFor, type AccountName, type Credential } from '../security/credentials.js';
import { caBase64, ensurePki, type ServerCertificateInfo, type TlsMaterial } from '../security/pki.js';
import { renderRegistryConfig } from '../registries/registry-config.js';
import { REGISTRY_NAMES, stateLayout, type RegistryName, type StateLayout } from '../config/state-layout.js';
import { openDatabase, schemaVersion, type Db } from '../store/db.js';
import { recordEvent } from '../store/events.js';
import { getSetting, setSetting } from '../store/settings.js';
import { SupervisedRegistry, probeHttps, stopOrphan, type RegistryStatus } from '../registries/supervisor.js';
import { Importer } from '../import/runner.js';
import { writeReleasesJson } from '../import/commit.js';
import { currentRelease, listReleases } from '../store/releases.js';
import { unfinishedImports } from '../store/imports.js';
import { getCredential } from '../store/credentials.js';
import { RegistryClient, type PushTarget } from '../../oci/client.js';
import { pidAlive } from '../../kit/pids.js';

/** Settings keys. */
const REPO_ADDRESS = 'repo.address';
const REGISTRY_HTTP_SECRET = 'registry.httpSecret';

export class StateDirError extends AirgapError {}

/** What `airgap setup --json` prints (DESIGN.md, "CLI contract"). */
export interface ConnectionDetails {
  repository: { url: string } & Credential;
  imageRegistry: { url: string } & Credential;
  packRegistry: { url: string } & Credential;
  console: { url: string } & Credential;
  caCertificateBase64: string;
}

export interface SetupResult {
  details: ConnectionDetails;
  /** What this run changed; all false on a repeated run. */
  changed: { repoAddress: boolean; certificate: boolean; registriesRestarted: RegistryName[] };
  warnings: string[];
}

export interface ApplianceStatus {
  version: string;
  healthy: boolean;
  problems: string[];
  daemon: { pid: number; startedAt: string; uptimeSeconds: number; stateDir: string; address: string };
  repoAddress: string | null;
  repository: { url: string };
  console: { url: string };
  certificate: ServerCertificateInfo;
  registries: Array<RegistryStatus & { url: string; healthy: boolean; version: string }>;
  database: { path: string; schemaVersion: number; sizeBytes: number };
  disk: { path: string; totalBytes: number; freeBytes: number; usedBytes: number };
  /** The current release, and how many are on the box. */
  release: { current: string | null; name: string | null; installed: number };
  /** Imports not finished yet (running first). */
  imports: Array<{ id: number; state: string; stage: string | null; file: string; version: string | null }>;
}

export interface ApplianceOptions {
  config: ServeConfig;
  log: Logger;
  /** The airgap release, for status. */
  version: string;
  /** Called after the server certificate changed, so listeners reload it. */
  onTlsChange?: (tls: TlsMaterial) => void;
}

function registryPort(config: ServeConfig, name: RegistryName): number {
  return name === 'images' ? config.registryPort : config.packRegistryPort;
}

function registryAccount(name: RegistryName): AccountName {
  return name === 'images' ? 'imageRegistry' : 'packRegistry';
}

/** This machine's host name when it is a valid DNS name (it goes into the SAN). */
function dnsHostname(): string | undefined {
  const name = osHostname().toLowerCase();
  try {
    return parseRepoAddress(name).kind === 'dns' ? name : undefined;
  } catch {
    return undefined;
  }
}

async function registryVersion(binary: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: 5000 });
    return stdout.trim().split(/\s+/).pop() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Makes the state dir (0700) and proves it usable: write, fsync, read back and delete a
 * probe file. Throws StateDirError AG_STATE_DIR with what to do.
 */
async function checkStateDir(dir: string): Promise<void> {
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const token = randomBytes(16).toString('hex');
    const fh = await open(probe, 'w', 0o600);
    await fh.writeFile(token);
    await fh.sync();
    await fh.close();
    if ((await readFile(probe, 'utf8')) !== token) throw new Error('read back different bytes');
    await unlink(probe);
  } catch (cause) {
    await rm(probe, { force: true }).catch(() => {});
    const e = cause as NodeJS.ErrnoException;
    throw new StateDirError('AG_STATE_DIR', `the state dir ${dir} is not usable: ${e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? 'not writable' : e.message}`, {
      cause,
      hint: e.code === 'ENOSPC' ? 'free some space on its disk' : 'run as root, or pass --state-dir (or AIRGAP_STATE_DIR) with a folder you can write',
    });
  }
}


/** Whether `pid` runs `airgap serve` (after a hard reset, the pid in a stale file may be another program's). */
async function isAirgapDaemon(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) return true; // no /proc: trust the pid
  const args = cmdline.split('\0');
  return args.includes('serve') && args.some((a) => /airgap|cli\.js$/.test(a));
}

/**
 * Takes the state dir for this daemon: a pid file made with O_EXCL. A pid file whose
 * process is gone is stale and replaced. Throws AG_DAEMON_RUNNING when a live daemon
 * holds it.
 */
async function lockStateDir(layout: StateLayout): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(layout.daemonPid, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(layout.daemonPid, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid && pidAlive(pid) && (await isAirgapDaemon(pid))) {
        throw new StateDirError('AG_DAEMON_RUNNING', `another airgap daemon (pid ${pid}) is running with the state dir ${layout.root}`, {
          hint: "use that one ('airgap status'), or stop it first",
        });
      }
      await unlink(layout.daemonPid).catch(() => {});
    }
  }
  throw new StateDirError('AG_DAEMON_RUNNING', `cannot take ${layout.daemonPid}`);
}

/** A one-at-a-time queue for operations that change the appliance's config. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  }
}

export class Appliance {
  readonly layout: StateLayout;
  readonly db: Db;
  readonly registries: Record<RegistryName, SupervisedRegistry>;
  readonly importer: Importer;
  private tlsMaterial: TlsMaterial;
  private certificate: ServerCertificateInfo;
  private credentials: Record<AccountName, Credential>;
  private registryVersion = 'unknown';
  private readonly startedAt = new Date();
  private readonly changes = new Mutex();
  private closed = false;

  private constructor(
    private readonly options: ApplianceOptions,
    layout: StateLayout,
    db: Db,
    pki: { tls: TlsMaterial; server: ServerCertificateInfo },
  ) {
    this.layout = layout;
    this.db = db;
    this.tlsMaterial = pki.tls;
    this.certificate = pki.server;
    this.credentials = ensureCredentials(db);
    const { config, log } = options;
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
            credential: () => this.credentials[registryAccount(name)],
            log: log.child({ registry: name }),
            onEvent: (kind, message, data) => this.event('daemon', kind, message, data),
            fingerprint: () => this.registryFingerprint(name),
          }),
        ];
      }),
    ) as Record<RegistryName, SupervisedRegistry>;
    this.importer = new Importer({
      db,
      log: log.child({ component: 'import' }),
      layout,
      targets: () => this.pushTargets(),
      registryProblems: async () =>
        REGISTRY_NAMES.filter((name) => this.registries[name].status().state !== 'running').map((name) => `the ${name} registry is ${this.registries[name].status().state}`),
      allowUnsigned: config.allowUnsigned,
      onEvent: (actor, kind, message, data) => this.event(actor, kind, message, data),
    });
    // An uploaded .bin is the appliance's copy: removed once its import has ended.
    this.importer.on('finished', (row?: { source: string; file: string }) => {
      if (row?.source === 'upload' && row.file.startsWith(`${layout.uploadsDir}/`)) void rm(row.file, { force: true });
    });
  }

  /** Push clients for the bundled registries, over loopback, trusting the appliance CA. */
  pushTargets(): Record<RegistryName, PushTarget> {
    const host = loopbackFor(this.options.config.address);
    const make = (name: RegistryName) =>
      new RegistryClient({
        registry: httpsUrl(host, registryPort(this.options.config, name)),
        caPem: this.tlsMaterial.caPem,
        credentials: this.credentials[registryAccount(name)],
        access: 'push',
        label: `${name} registry`,
      });
    return { images: make('images'), packs: make('packs') };
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
    const existed = await stat(layout.root).then(() => true, () => false);
    await checkStateDir(layout.root);
    // A folder we made is ours to close; an existing one (given with --state-dir) keeps its mode.
    if (!existed) await chmod(layout.root, 0o700).catch(() => {});
    await lockStateDir(layout);
    let db: Db | undefined;
    try {
      for (const dir of [layout.pkiDir, layout.repoDir, layout.trustedKeysDir, layout.inboxDir, layout.registriesDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
      db = openDatabase(layout.database);
      if (!getSetting(db, REGISTRY_HTTP_SECRET)) setSetting(db, REGISTRY_HTTP_SECRET, randomBytes(32).toString('base64url'));
      const pki = await ensurePki(layout, certificateNames(config, getSetting(db, REPO_ADDRESS)));
      const appliance = new Appliance(options, layout, db, pki);
      if (pki.caCreated) appliance.event('daemon', 'pki.ca_created', 'made the appliance CA', { fingerprintSha256: new X509Certificate(pki.tls.caPem).fingerprint256 });
      await appliance.writeRegistryFiles();
      await writeReleasesJson(db, layout.repoDir);
      appliance.registryVersion = await registryVersion(config.registryBinary);
      return appliance;
    } catch (err) {
      db?.close();
      await unlink(layout.daemonPid).catch(() => {});
      throw err;
    }
  }

  get tls(): TlsMaterial {
    return this.tlsMaterial;
  }

  /** Records an event and logs it. */
  event(actor: string, kind: string, message: string, data?: Record<string, unknown>): void {
    this.options.log.info({ event: kind, ...data }, message);
    if (this.closed) return;
    try {
      recordEvent(this.db, { actor, kind, message, ...(data ? { data } : {}) });
    } catch (err) {
      // Called from process exit handlers and timers: a full disk must not take the daemon down.
      this.options.log.error({ err, event: kind }, 'could not record the event in the database');
    }
  }

  /** A digest of every file a registry reads; a running registry started from others needs a restart. */
  private async registryFingerprint(name: RegistryName): Promise<string> {
    const paths = this.layout.registry(name);
    const hash = createHash('sha256');
    for (const file of [paths.config, paths.htpasswd, this.layout.serverCert, this.layout.serverKey]) {
      hash.update(await readFile(file).catch(() => Buffer.alloc(0)));
      hash.update('\0');
    }
    return hash.digest('hex');
  }

  /** Stops the registries a killed daemon left running on this state dir (they hold our ports). */
  async stopOrphans(): Promise<void> {
    await Promise.all(
      REGISTRY_NAMES.map(async (name) => {
        const paths = this.layout.registry(name);
        const orphan = await stopOrphan(paths.pidFile, paths.config);
        if (orphan) this.event('daemon', 'registry.orphan_stopped', `stopped the ${name} registry (pid ${orphan}) an earlier daemon left running`, { registry: name, pid: orphan });
      }),
    );
  }

  /**
   * Starts both registries (in parallel) and waits until each answers `/v2/`. When one
   * fails, stops the other and throws the first failure in REGISTRY_NAMES order.
   */
  async startRegistries(): Promise<void> {
    const results = await Promise.allSettled(REGISTRY_NAMES.map((name) => this.registries[name].start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failed) return;
    await Promise.all(REGISTRY_NAMES.map((name) => this.registries[name].stop()));
    throw failed.reason;
  }

  /**
   * Writes each registry's config.yml and htpasswd when their content differs (which
   * registries then need a restart is told by their fingerprints, not by this).
   */
  private async writeRegistryFiles(): Promise<void> {
    const secret = getSetting(this.db, REGISTRY_HTTP_SECRET)!;
    for (const name of REGISTRY_NAMES) {
      const paths = this.layout.registry(name);
      await mkdir(paths.data, { recursive: true, mode: 0o700 });
      const config = renderRegistryConfig({
        name,
        paths,
        address: this.options.config.address,
        port: registryPort(this.options.config, name),
        serverCert: this.layout.serverCert,
        serverKey: this.layout.serverKey,
        httpSecret: secret,
      });
      const currentHtpasswd = await readFile(paths.htpasswd, 'utf8').catch(() => undefined);
      const htpasswd = htpasswdFor(this.credentials[registryAccount(name)], currentHtpasswd);
      if ((await readFile(paths.config, 'utf8').catch(() => undefined)) !== config) await writeFileAtomic(paths.config, config, 0o600);
      if (currentHtpasswd !== htpasswd) await writeFileAtomic(paths.htpasswd, htpasswd, 0o600);
    }
  }

  /** The repo address set by setup, or null before the first setup. */
  repoAddress(): string | null {
    return getSetting(this.db, REPO_ADDRESS) ?? null;
  }

  /** The address URLs are built from: the repo address, else the listen address or host name. */
  private publicAddress(): string {
    const address = this.repoAddress();
    if (address) return address;
    const listen = this.options.config.address;
    return isWildcardAddress(listen) ? (dnsHostname() ?? '127.0.0.1') : listen;
  }

  /** URLs, credentials and the CA, as `airgap setup` prints them. */
  connectionDetails(): ConnectionDetails {
    const address = this.publicAddress();
    const { config } = this.options;
    const url = httpsUrl(address, config.httpsPort);
    return {
      repository: { url, ...this.credentials.repository },
      imageRegistry: { url: httpsUrl(address, config.registryPort), ...this.credentials.imageRegistry },
      packRegistry: { url: httpsUrl(address, config.packRegistryPort), ...this.credentials.packRegistry },
      console: { url, ...this.credentials.console },
      caCertificateBase64: caBase64(this.tlsMaterial.caPem),
    };
  }

  /** The console account with the scrypt hash of its password (the console checks the hash). */
  consoleAccount(): { username: string; passwordHash: string } {
    const row = getCredential(this.db, 'console')!;
    return { username: row.username, passwordHash: row.passwordHash };
  }

  /** The credential of one account (for the repository's basic auth, the console). */
  credential(name: AccountName): Credential {
    return this.credentials[name];
  }

  /**
   * `airgap setup <repo-ip>`: validates the address, stores it, re-issues the server
   * certificate when its SAN must change (the CA stays), rewrites registry files and
   * restarts only the registries whose config or certificate changed. Idempotent.
   * Throws UsageError for a bad address, RegistryStartError when a registry does not
   * come back (the error says which and why).
   */
  setup(input: string, actor = 'cli'): Promise<SetupResult> {
    return this.changes.run(async () => {
      const address = parseRepoAddress(input);
      const warnings = await addressWarnings(address);
      const addressChanged = setSetting(this.db, REPO_ADDRESS, address.value);
      const pki = await ensurePki(this.layout, certificateNames(this.options.config, address.value));
      this.tlsMaterial = pki.tls;
      this.certificate = pki.server;
      if (pki.serverCertIssued) this.options.onTlsChange?.(pki.tls);
      await this.writeRegistryFiles();
      // Restart every registry whose running process started from other files: changed
      // now, or left behind by an earlier setup whose restart failed.
      const restart: RegistryName[] = [];
      for (const name of REGISTRY_NAMES) {
        if (this.registries[name].startedWith !== (await this.registryFingerprint(name))) restart.push(name);
      }
      const outcomes = await Promise.allSettled(restart.map((name) => this.registries[name].restart()));
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      const changed = { repoAddress: addressChanged, certificate: pki.serverCertIssued, registriesRestarted: restart.filter((_, i) => outcomes[i]!.status === 'fulfilled') };
      if (addressChanged || pki.serverCertIssued || restart.length) {
        this.event(actor, 'setup.applied', `setup for ${address.value}${pki.serverCertIssued ? ': new server certificate' : ''}${restart.length ? `, restarted ${restart.join(' and ')}` : ''}${failed ? ' (a restart failed)' : ''}`, {
          ...changed,
          repoAddress: address.value,
          subjectAltNames: pki.server.subjectAltNames,
        });
      }
      if (failed) throw failed.reason;
      return { details: this.connectionDetails(), changed, warnings };
    });
  }

  /** Health of every part. Never throws for an unhealthy part: it is reported. */
  async status(): Promise<ApplianceStatus> {
    const { config } = this.options;
    const address = this.publicAddress();
    const problems: string[] = [];
    const registries = await Promise.all(
      REGISTRY_NAMES.map(async (name) => {
        const s = this.registries[name].status();
        let healthy = false;
        if (s.state === 'running') {
          healthy = await probeHttps(`${httpsUrl(loopbackFor(config.address), registryPort(config, name))}/v2/`, this.tlsMaterial.caPem, this.credentials[registryAccount(name)]).then(
            (code) => code === 200,
            () => false,
          );
        }
        if (!healthy) problems.push(`the ${name} registry is ${s.state === 'running' ? 'not answering' : s.state}`);
        return { ...s, url: httpsUrl(address, registryPort(config, name)), healthy, version: this.registryVersion };
      }),
    );
    const fs = await statfs(this.layout.registriesDir);
    const disk = {
      path: this.layout.registriesDir,
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
      usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
    };
    if (disk.totalBytes > 0 && disk.freeBytes / disk.totalBytes < 0.05) problems.push(`the registry volume has only ${Math.round((disk.freeBytes / disk.totalBytes) * 100)}% free`);
    const now = Date.now();
    const current = currentRelease(this.db);
    return {
      version: this.options.version,
      healthy: problems.length === 0,
      problems,
      daemon: {
        pid: process.pid,
        startedAt: this.startedAt.toISOString(),
        uptimeSeconds: Math.round((now - this.startedAt.getTime()) / 1000),
        stateDir: this.layout.root,
        address: config.address,
      },
      repoAddress: this.repoAddress(),
      repository: { url: httpsUrl(address, config.httpsPort) },
      console: { url: httpsUrl(address, config.httpsPort) },
      certificate: this.certificate,
      registries,
      database: { path: this.layout.database, schemaVersion: schemaVersion(this.db), sizeBytes: (await stat(this.layout.database)).size },
      disk,
      release: { current: current?.version ?? null, name: current?.name ?? null, installed: listReleases(this.db).length },
      imports: unfinishedImports(this.db)
        .sort((a, b) => (a.state === b.state ? a.id - b.id : a.state === 'running' ? -1 : 1))
        .map((i) => ({ id: i.id, state: i.state, stage: i.stage, file: i.file, version: i.version })),
    };
  }

  /** Stops the registries, closes the database and releases the state dir. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.importer.close();
    await Promise.all(REGISTRY_NAMES.map((n) => this.registries[n].stop()));
    this.event('daemon', 'daemon.stopped', 'the daemon stopped');
    this.closed = true;
    this.db.close();
    await unlink(this.layout.daemonPid).catch(() => {});
  }
}

/**
 * Names for the server certificate's SAN: the repo address first (or the listen address
 * before setup), the host name, then loopback so that on-box clients verify it too.
 */
export function certificateNames(config: ServeConfig, repoAddress: string | undefined): string[] {
  const names = [repoAddress, isWildcardAddress(config.address) ? undefined : config.address, dnsHostname(), 'localhost', '127.0.0.1', '::1'];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}
