/**
 * Runs the real appliance daemon (`scripts/airgap serve`) for a test: on 127.0.0.1 with
 * free ports and a temp state dir; its two docker-registry processes are real. Stops it
 * (SIGTERM) when the test ends.
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort } from './registry.js';

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

/** Whether a daemon answers on `socketPath` (a dead daemon's socket file refuses). */
function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/v1/events?limit=1' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Starts the daemon and resolves once its admin socket answers (the daemon opens it
 * only after the registries answer). Rejects with the daemon's output when it exits.
 */
export async function startDaemon(options: { stateDir?: string; ports?: DaemonPorts; env?: Record<string, string> } = {}): Promise<TestDaemon> {
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'airgap-state-')));
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
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) break;
    const ready = await socketAnswers(join(stateDir, 'admin.sock'));
    if (ready) return daemon;
    await new Promise((r) => setTimeout(r, 100));
  }
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

/** Polls `check` every 100 ms until it returns true or `seconds` pass. */
export async function waitFor(check: () => Promise<boolean> | boolean, seconds = 20): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
