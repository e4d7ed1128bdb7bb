/**
 * Starts Debian's `docker-registry` (CNCF distribution) on 127.0.0.1 for a test, plain
 * HTTP, storage in a temp folder; stops it when the test ends.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import bcrypt from 'bcryptjs';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  stop(): Promise<void>;
}

/**
 * Starts a registry and waits until GET /v2/ answers (401 counts when `auth` is set:
 * htpasswd with a bcrypt hash, as the appliance configures it).
 */
export async function startRegistry(auth?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'airgap-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const authLines: string[] = [];
  if (auth) {
    await writeFile(join(dir, 'htpasswd'), `${auth.username}:${bcrypt.hashSync(auth.password, 10)}\n`);
    authLines.push(`auth: { htpasswd: { realm: airgap-test, path: ${join(dir, 'htpasswd')} } }`);
  }
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      ...authLines,
      '',
    ].join('\n'),
  );
  const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://${host}/v2/`).then((r) => r.ok || (auth !== undefined && r.status === 401), () => false);
    if (ok) return { host, stop: async () => void (child.kill('SIGTERM'), await child) };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  const result = await child;
  throw new Error(`docker-registry did not start on ${host}: ${String(result.stderr).slice(-2000)}`);
}
