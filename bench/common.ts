/**
 * What the benches share: fresh appliances on loopback (their own state dir, ports and
 * trusted key), the daemon's peak RSS, timing, and an import through the CLI that samples
 * the extra disk it uses.
 */
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort } from '../test/helpers/registry.js';

export const root = join(import.meta.dirname, '..', '..');
export const AIRGAP = join(root, 'scripts', 'airgap');
export const work = join(root, 'bench', 'work');
export const MB = 1024 * 1024;

export interface Appliance {
  stateDir: string;
  registry: string;
  child: ResultPromise;
  creds: string;
  certDir: string;
  stop(): Promise<void>;
}

/**
 * Starts `airgap serve` on free loopback ports with `trustedKey`. `nodeArgs` (e.g.
 * `--cpu-prof`, which NODE_OPTIONS refuses) start the daemon with node directly, with the
 * settings scripts/airgap gives it.
 */
export async function startAppliance(name: string, trustedKey: string, nodeArgs: string[] = []): Promise<Appliance> {
  const stateDir = join(work, `state-${name}`);
  await rm(stateDir, { recursive: true, force: true });
  await mkdir(join(stateDir, 'trusted-keys'), { recursive: true });
  await copyFile(trustedKey, join(stateDir, 'trusted-keys', 'bench.pub'));
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const serve = ['serve', '--state-dir', stateDir, '--address', '127.0.0.1', '--https-port', String(ports[0]), '--http-port', String(ports[1]), '--registry-port', String(ports[2]), '--pack-registry-port', String(ports[3]), '--log-level', 'warn'];
  const child = nodeArgs.length
    ? execa(process.execPath, ['--enable-source-maps', '--max-semi-space-size=4', ...nodeArgs, join(root, 'dist', 'src', 'cli.js'), ...serve], { reject: false, env: { MALLOC_MMAP_THRESHOLD_: '1048576' } })
    : execa(AIRGAP, serve, { reject: false });
  let details: { imageRegistry: { username: string; password: string }; caCertificateBase64: string } | undefined;
  for (let i = 0; i < 200 && !details; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const r = await execa(AIRGAP, ['setup', '127.0.0.1', '--json', '--state-dir', stateDir], { reject: false });
    if (r.exitCode === 0) details = JSON.parse(r.stdout) as typeof details;
  }
  if (!details) throw new Error(`appliance ${name} did not start`);
  const certDir = join(stateDir, 'client-certs');
  await mkdir(certDir, { recursive: true });
  await writeFile(join(certDir, 'ca.crt'), Buffer.from(details.caCertificateBase64, 'base64'));
  return {
    stateDir,
    registry: `127.0.0.1:${ports[2]}`,
    child,
    creds: `${details.imageRegistry.username}:${details.imageRegistry.password}`,
    certDir,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

/** Peak RSS (VmHWM) of `pid` in bytes, or undefined once it has exited. */
export async function vmHwm(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kb = status && /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/** Peak RSS (VmHWM) of the appliance daemon, bytes. */
export async function daemonPeakRss(stateDir: string): Promise<number> {
  const pid = Number((await readFile(join(stateDir, 'daemon.pid'), 'utf8')).trim());
  return (await vmHwm(pid)) ?? 0;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, value };
}

/** Bytes of the state dir outside the registries' storage (what an import adds besides the blobs). */
async function extraBytes(stateDir: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (/registries\/[^/]+\/(data|incoming)$/.test(path)) continue; // the storage, and blobs on their way into it
        await walk(path);
      } else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(stateDir);
  return total;
}

export async function importBin(stateDir: string, bin: string): Promise<{ bytesPushed: number; blobsPushed: number; status: string; seconds: number; extraDiskBytes: number }> {
  const before = await extraBytes(stateDir);
  let peak = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await extraBytes(stateDir));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await execa(AIRGAP, ['import', bin, '--json', '--state-dir', stateDir]);
  sampling = false;
  await sampler;
  return { ...(JSON.parse(r.stdout) as { bytesPushed: number; blobsPushed: number; status: string; seconds: number }), extraDiskBytes: peak - before };
}

