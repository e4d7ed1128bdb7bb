/**
 * Supervises one bundled registry process (Debian's `docker-registry serve config.yml`):
 * starts it and waits until `/v2/` answers over TLS, restarts it with backoff when it
 * dies, stops it gracefully (SIGTERM, then SIGKILL after a grace period), and finds the
 * orphan a killed daemon left behind through its pid file.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { AirgapError } from '../../kit/errors.js';
import { RegistryClient } from '../../oci/client.js';
import { writeFileAtomic } from '../../kit/fs.js';
import { Mutex } from '../../kit/mutex.js';
import { pidAlive } from '../../kit/pids.js';

export class RegistryStartError extends AirgapError {}

export type RegistryState = 'stopped' | 'starting' | 'running' | 'backoff';

export interface RegistryStatus {
  name: string;
  state: RegistryState;
  pid: number | null;
  /** Unplanned exits followed by a restart since the daemon started. */
  restarts: number;
  since: string | null;
  lastExit: { code: number | null; signal: string | null; at: string } | null;
}

export interface SupervisorOptions {
  name: string;
  binary: string;
  configPath: string;
  pidFile: string;
  /** `https://host:port/v2/`: answers 200 to the registry's account when it is up. */
  probeUrl: string;
  /** The CA that signed the registry's certificate (PEM), read at each probe. */
  caPem: () => string;
  /** The name the server certificate is checked against (the repo address for a site certificate); undefined: the probe URL's host. */
  serverName?: () => string | undefined;
  /** The registry's account: the probe logs in, so a 401 in its log is a real client's. */
  credential: () => { username: string; password: string };
  log: Logger;
  /** Called for events worth keeping in the event log. */
  onEvent: (kind: string, message: string, data: Record<string, unknown>) => void;
  /** Seconds to wait for `/v2/` after a spawn (default 30). */
  startTimeoutSeconds?: number;
  /**
   * A running process whose `/v2/` answers nothing (no status at all: a hung or stopped
   * process) for this long is killed and restarted like a crash (default 30).
   */
  stallSeconds?: number;
  /** A digest of the files the process reads (config, htpasswd, certificate), taken at each spawn. */
  fingerprint: () => Promise<string>;
}

/**
 * Backoff between restarts, seconds; the last one repeats. A (re)start whose process
 * answered the health probe starts it over: its next crash restarts after 1 s.
 */
const BACKOFF_SECONDS = [1, 2, 4, 8, 16, 30];
const STOP_GRACE_MS = 15_000;


/**
 * GET /v2/ of the registry at `url` (its `/v2/` path is implied) over TLS trusting
 * `caPem`, with basic auth when `credential` is given, through the project's one OCI
 * client: one attempt, `timeoutMs` at most. Resolves the HTTP status; rejects on
 * connection, TLS or timeout errors.
 */
export async function probeHttps(url: string, caPem: string, credential?: { username: string; password: string }, timeoutMs = 2000, serverName?: string): Promise<number> {
  const client = new RegistryClient({ registry: new URL(url).origin, caPem, ...(serverName ? { serverName } : {}), ...(credential ? { credentials: credential } : {}), timeoutMs, retries: 0, maxSockets: 1 });
  try {
    return await client.ping();
  } finally {
    client.close();
  }
}

/**
 * Stops a registry that an earlier daemon started with `configPath` and left running
 * (the daemon was killed with SIGKILL). Only a process whose command line names that
 * config is touched. Returns the pid it stopped, if any.
 */
export async function stopOrphan(pidFile: string, configPath: string): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.split('\0').includes(configPath)) {
    await unlink(pidFile).catch(() => {});
    return undefined;
  }
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; pidAlive(pid) && waited < STOP_GRACE_MS; waited += 100) await sleep(100);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  await unlink(pidFile).catch(() => {});
  return pid;
}

/**
 * One supervised registry. Start, stop, restart and crash restarts run one at a time
 * (a lock), so a setup that restarts a registry while it is coming back from a crash
 * never leaves two processes or an untracked one.
 */
export class SupervisedRegistry {
  private child: ChildProcess | undefined;
  private state: RegistryState = 'stopped';
  private stopping = false;
  private restarts = 0;
  private failures = 0;
  private since: Date | undefined;
  private lastExit: RegistryStatus['lastExit'] = null;
  private backoffTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly lock = new Mutex();
  /** The watchdog's timer, and when the running process last answered a probe (ms). */
  private watchdog: NodeJS.Timeout | undefined;
  private lastAnswer = 0;
  private probing = false;
  /** The last lines the process printed, for error messages. */
  private tail: string[] = [];
  /** The fingerprint of the files the running process started with. */
  startedWith: string | undefined;

  constructor(private readonly options: SupervisorOptions) {}

  status(): RegistryStatus {
    return {
      name: this.options.name,
      state: this.state,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      since: this.since?.toISOString() ?? null,
      lastExit: this.lastExit,
    };
  }

  /**
   * Spawns the process and resolves once `/v2/` answers. Throws RegistryStartError
   * (with the process's last lines) when it exits first or does not answer in time.
   */
  async start(): Promise<void> {
    clearTimeout(this.backoffTimer);
    await this.lock.run(async () => {
      this.stopping = false;
      await this.spawnAndWait();
    });
  }

  /** Stops the process: SIGTERM, then SIGKILL after 15 s. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.backoffTimer);
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    // A process still coming up is told at once, so the lock is not held for its start timeout.
    if (this.state === 'starting') this.child?.kill('SIGTERM');
    await this.lock.run(() => this.stopNow());
  }

  /**
   * Stop, then start (a changed config or certificate). When the new process does not
   * come up, the error is thrown and the supervisor keeps retrying with backoff, as
   * after a crash.
   */
  async restart(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.backoffTimer);
    try {
      await this.lock.run(async () => {
        await this.stopNow();
        this.stopping = false;
        await this.spawnAndWait();
      });
    } catch (err) {
      this.scheduleRetry(err as Error);
      throw err;
    }
  }

  private async stopNow(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.state = 'stopped';
    this.child = undefined;
    this.startedWith = undefined;
    await unlink(this.options.pidFile).catch(() => {});
  }

  private async spawnAndWait(): Promise<void> {
    const { binary, configPath, log } = this.options;
    this.state = 'starting';
    this.tail = [];
    const fingerprint = await this.options.fingerprint();
    let child: ChildProcess;
    const spawned = new Promise<void>((resolve, reject) => {
      child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    try {
      await spawned;
    } catch (cause) {
      this.state = 'stopped';
      const e = cause as NodeJS.ErrnoException;
      throw new RegistryStartError(
        'AG_REGISTRY_BINARY',
        e.code === 'ENOENT' ? `the registry program '${binary}' is not installed (not found on PATH)` : `cannot run '${binary}': ${e.message}`,
        { cause, hint: "install Debian's docker-registry package: apt-get install docker-registry" },
      );
    }
    child = child!;
    this.child = child;
    this.since = new Date();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      this.onExit(child, code, signal);
      resolve();
    }));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
    await writeFileAtomic(this.options.pidFile, `${child.pid}\n`, 0o644);
    const deadline = Date.now() + (this.options.startTimeoutSeconds ?? 30) * 1000;
    let lastError = '';
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      try {
        const status = await probeHttps(this.options.probeUrl, this.options.caPem(), this.options.credential(), undefined, this.options.serverName?.());
        // A 200 counts only while our own child lives (not another process on the port).
        if (status === 200 && child.exitCode === null && child.signalCode === null) {
          this.state = 'running';
          this.startedWith = fingerprint;
          this.failures = 0;
          this.lastAnswer = Date.now();
          this.startWatchdog();
          log.info({ pid: child.pid }, 'registry ready');
          return;
        }
        lastError = `GET ${this.options.probeUrl} answered ${status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(100);
    }
    const died = child.exitCode !== null || child.signalCode !== null;
    if (!died) {
      child.kill('SIGKILL');
      await this.exited;
    }
    this.state = 'stopped';
    this.child = undefined;
    const exit = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
    const reason = this.tail.slice(-5).join('\n  ') || (died ? `${exit}, no output` : lastError);
    throw new RegistryStartError(
      'AG_REGISTRY_START',
      died ? `the ${this.options.name} registry exited at start: ${reason}` : `the ${this.options.name} registry did not answer ${this.options.probeUrl}: ${lastError}`,
      { hint: /address already in use/.test(reason) ? 'another program holds its port; stop it or choose another port' : `see the daemon log; config ${this.options.configPath}` },
    );
  }

  /**
   * Probes the running process every few seconds; one that answers nothing for
   * `stallSeconds` (SIGSTOP, a deadlock, a hung disk) gets SIGKILL, and the exit handler
   * restarts it with backoff. Any HTTP status counts as an answer.
   */
  private startWatchdog(): void {
    if (this.watchdog) return;
    const stallMs = (this.options.stallSeconds ?? 30) * 1000;
    const everyMs = Math.min(5000, Math.max(250, stallMs / 4));
    // A probe may take up to 2 s (a loaded box), but never longer than half the stall window.
    this.watchdog = setInterval(() => void this.watch(stallMs, Math.min(2000, stallMs / 2)), everyMs);
    this.watchdog.unref();
  }

  private async watch(stallMs: number, timeoutMs: number): Promise<void> {
    const child = this.child;
    if (this.probing || this.state !== 'running' || !child || this.stopping) return;
    this.probing = true;
    try {
      await probeHttps(this.options.probeUrl, this.options.caPem(), this.options.credential(), timeoutMs, this.options.serverName?.());
      this.lastAnswer = Date.now();
    } catch (err) {
      const silentMs = Date.now() - this.lastAnswer;
      if (silentMs < stallMs || this.child !== child || this.state !== 'running') return;
      const message = `the ${this.options.name} registry has not answered for ${Math.round(silentMs / 1000)} s; killing it (pid ${child.pid}) so it restarts`;
      this.options.log.error({ err, pid: child.pid }, message);
      this.options.onEvent('registry.unresponsive', message, { registry: this.options.name, pid: child.pid, silentSeconds: Math.round(silentMs / 1000) });
      child.kill('SIGKILL');
    } finally {
      this.probing = false;
    }
  }

  private onLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 50) this.tail.shift();
    const log = this.options.log;
    try {
      const { level: registryLevel, msg, time: _time, 'go.version': _go, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const level = registryLevel === 'error' || registryLevel === 'fatal' || registryLevel === 'panic' ? 'error' : registryLevel === 'warning' ? 'warn' : 'debug';
      log[level]({ registryLog: fields }, typeof msg === 'string' ? msg : line);
    } catch {
      log.info(line);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.lastExit = { code, signal, at: new Date().toISOString() };
    if (this.stopping || this.state === 'starting') return;
    const delay = BACKOFF_SECONDS[Math.min(this.failures, BACKOFF_SECONDS.length - 1)]!;
    this.failures += 1;
    this.state = 'backoff';
    this.child = undefined;
    this.startedWith = undefined;
    const message = `the ${this.options.name} registry exited (${signal ? `signal ${signal}` : `code ${code}`}); restarting in ${delay} s`;
    this.options.log.warn({ code, signal, delay, tail: this.tail.slice(-5) }, message);
    this.options.onEvent('registry.exited', message, { registry: this.options.name, code, signal, delaySeconds: delay });
    this.backoffTimer = setTimeout(() => void this.restartAfterCrash(), delay * 1000);
  }

  private restartAfterCrash(): Promise<void> {
    return this.lock.run(async () => {
      if (this.stopping) return;
      try {
        await this.spawnAndWait();
        this.restarts += 1;
        this.options.onEvent('registry.restarted', `the ${this.options.name} registry was restarted`, { registry: this.options.name, pid: this.child?.pid });
      } catch (err) {
        this.scheduleRetry(err as Error);
      }
    });
  }

  private scheduleRetry(err: Error): void {
    if (this.stopping) return;
    const delay = BACKOFF_SECONDS[Math.min(this.failures, BACKOFF_SECONDS.length - 1)]!;
    this.failures += 1;
    this.state = 'backoff';
    this.options.log.error({ err, delay }, `restart of the ${this.options.name} registry failed; next try in ${delay} s`);
    this.options.onEvent('registry.restart_failed', err.message, { registry: this.options.name, delaySeconds: delay });
    this.backoffTimer = setTimeout(() => void this.restartAfterCrash(), delay * 1000);
  }
}
