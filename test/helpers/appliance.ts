/**
 * Runs the real appliance daemon (`scripts/airgap serve`) for a test: on 127.0.0.1 with
 * free ports and a temp state dir; its two docker-registry processes are real. Stops it
 * (SIGTERM) and removes the state dir it made when the test ends. Reads the daemon's
 * state through its admin socket, as the CLI does, without a process per question.
 */
import { readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import { stateLayout } from '../../src/appliance/config/state-layout.js';
import { freePort } from './registry.js';
import { tempDir, type Teardown } from './temp.js';
import { waitFor } from './wait.js';

export { waitFor };

export const AIRGAP = join(import.meta.dirname, '..', '..', 'scripts', 'airgap');
export const AIRGAP_SETUP = join(import.meta.dirname, '..', '..', 'scripts', 'airgap-setup');

export interface CliResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

/** Runs `scripts/airgap <args>`; never rejects. */
export async function airgap(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await execa(AIRGAP, args, { reject: false, env });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * Rows of `sql` from the state dir's database, opened read-only for this one query (the
 * daemon keeps writing it; WAL lets both go on).
 */
export function queryState<T>(stateDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(stateDir, 'airgap.db'), { readonly: true, timeout: 5000 });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

export interface DaemonPorts {
  https: number;
  http: number;
  registry: number;
  packRegistry: number;
}

export interface TestDaemon {
  stateDir: string;
  ports: DaemonPorts;
  child: ResultPromise;
  /** Runs `airgap <args>` against this daemon's state dir. */
  cli(args: string[], options?: { env?: Record<string, string> }): Promise<CliResult>;
  /** SIGTERM and wait; resolves the daemon's exit code. */
  stop(): Promise<{ exitCode: number | undefined }>;
  /** Everything the daemon printed so far. */
  output(): string;
}

export async function freePorts(): Promise<DaemonPorts> {
  const taken = new Set<number>();
  const next = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) return taken.add(port), port;
    }
  };
  return { https: await next(), http: await next(), registry: await next(), packRegistry: await next() };
}

export function serveArgs(stateDir: string, ports: DaemonPorts): string[] {
  return [
    'serve',
    '--state-dir', stateDir,
    '--address', '127.0.0.1',
    '--https-port', String(ports.https),
    '--http-port', String(ports.http),
    '--registry-port', String(ports.registry),
    '--pack-registry-port', String(ports.packRegistry),
  ];
}

/**
 * GET `path` (e.g. `/v1/status`) on the admin socket of the daemon that owns `stateDir`
 * and resolves its JSON body. Rejects on a socket error (no daemon, a dead one's socket)
 * or a status other than 200.
 */
export async function adminGet<T>(stateDir: string, path: string): Promise<T> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: stateLayout(stateDir).adminSocket, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`GET ${path} on the admin socket: ${res.statusCode} ${body}`));
        resolve(body);
      });
    });
    req.on('error', reject);
    req.end();
  });
  return JSON.parse(text) as T; // a body that is not JSON rejects with the SyntaxError
}

/** Whether a daemon answers on its admin socket (a dead daemon's socket file refuses). */
function daemonAnswers(stateDir: string): Promise<boolean> {
  return adminGet(stateDir, '/v1/events?limit=1').then(() => true, () => false);
}

/** What `/v1/status` says of one registry (the fields tests read). */
export interface RegistryReport {
  name: string;
  state: string;
  healthy: boolean;
  pid: number | null;
  restarts: number;
}

/** The daemon's status of the registry `name`. Rejects when the daemon does not answer. */
export async function registryStatus(stateDir: string, name: 'images' | 'packs'): Promise<RegistryReport> {
  const s = await adminGet<{ registries: RegistryReport[] }>(stateDir, '/v1/status');
  const r = s.registries.find((x) => x.name === name);
  if (!r) throw new Error(`no registry ${name} in the status`);
  return r;
}

/** Whether the daemon answers and reports every part healthy. */
export function daemonHealthy(stateDir: string): Promise<boolean> {
  return adminGet<{ healthy: boolean }>(stateDir, '/v1/status').then((s) => s.healthy, () => false);
}

export interface EventRecord {
  id: number;
  kind: string;
  actor: string;
  message: string;
  data?: Record<string, unknown>;
}

/** The id of the newest event in the daemon's log (0 when there is none). */
export async function lastEventId(stateDir: string): Promise<number> {
  const { events } = await adminGet<{ events: EventRecord[] }>(stateDir, '/v1/events?limit=1');
  return events[0]?.id ?? 0;
}

/** The events recorded after the event `id`, oldest first (at most 1000). */
export async function eventsSince(stateDir: string, id: number): Promise<EventRecord[]> {
  const { events } = await adminGet<{ events: EventRecord[] }>(stateDir, '/v1/events?limit=1000');
  return events.filter((e) => e.id > id).reverse();
}

/**
 * Starts the daemon and resolves once its admin socket answers (the daemon opens it
 * only after the registries answer). Rejects with the daemon's output when it exits.
 * When `t` ends, the daemon is stopped and the state dir removed, if this call made it.
 */
export async function startDaemon(t: Teardown, options: { stateDir?: string; ports?: DaemonPorts; env?: Record<string, string> } = {}): Promise<TestDaemon> {
  const stateDir = options.stateDir ?? (await tempDir(t, 'airgap-state-'));
  const ports = options.ports ?? (await freePorts());
  let out = '';
  const child = execa(AIRGAP, serveArgs(stateDir, ports), { reject: false, all: true, env: { AIRGAP_LOG_LEVEL: 'debug', ...options.env } });
  child.all?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const cli = (args: string[], o: { env?: Record<string, string> } = {}) => airgap([...args, '--state-dir', stateDir], o.env);
  const daemon: TestDaemon = {
    stateDir,
    ports,
    child,
    cli,
    output: () => out,
    stop: async () => {
      child.kill('SIGTERM');
      const r = await child;
      return { exitCode: r.exitCode };
    },
  };
  t.teardown(() => daemon.stop());
  let ready = false;
  await waitFor(async () => child.exitCode !== null || (ready = await daemonAnswers(stateDir)), 40);
  if (ready) return daemon;
  // SIGTERM first: a daemon that is up but slow stops its registries; SIGKILL would orphan them.
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await child;
  clearTimeout(timer);
  throw new Error(`the daemon did not start:\n${out}`);
}

/** The pid a registry's pid file names. */
export async function registryPid(stateDir: string, name: 'images' | 'packs'): Promise<number> {
  return Number((await readFile(join(stateDir, 'registries', name, 'registry.pid'), 'utf8')).trim());
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of docker-registry processes whose command line names a file in `stateDir`. */
export async function registriesOf(stateDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(`${stateDir}/`) && cmdline.includes('docker-registry')) pids.push(Number(name));
  }
  return pids;
}
