/**
 * Starts Debian's `docker-registry` (CNCF distribution) on 127.0.0.1 for a test, plain
 * HTTP, storage in a temp folder; stops it and removes the folder when the test ends.
 */
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import bcrypt from 'bcryptjs';
import { tempDir, type Teardown } from './temp.js';
import { waitFor } from './wait.js';

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
 * htpasswd with a bcrypt hash, as the appliance configures it). When `t` ends, the
 * registry is stopped and its folder removed.
 */
export async function startRegistry(t: Teardown, auth?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = await tempDir(t, 'airgap-registry-');
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
  const stop = async () => void (child.kill('SIGTERM'), await child);
  t.teardown(stop);
  let ready = false;
  await waitFor(async () => child.exitCode !== null || (ready = await fetch(`http://${host}/v2/`).then((r) => r.ok || (auth !== undefined && r.status === 401), () => false)), 10);
  if (ready) return { host, stop };
  child.kill('SIGKILL');
  const result = await child;
  throw new Error(`docker-registry did not start on ${host}: ${String(result.stderr).slice(-2000)}`);
}
