/**
 * Starts Debian's `docker-registry` (CNCF distribution) on 127.0.0.1 for a test, plain
 * HTTP or TLS from a private CA made for it, storage in a temp folder; stops it and
 * removes the folder when the test ends.
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
  /** With `tls`: the PEM file of the private CA its certificate chains to. */
  caFile?: string;
  /** Its storage `rootdirectory`. */
  dataDir: string;
  stop(): Promise<void>;
}

/** A private CA and a server certificate for 127.0.0.1 signed by it (openssl), in `dir`. */
async function makeTls(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const f = (name: string) => join(dir, name);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=airgap test private CA', '-days', '2', '-keyout', f('ca.key'), '-out', f('ca.crt')]);
  await execa('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr')]);
  await writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await execa('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('san.ext'), '-out', f('server.crt')]);
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key') };
}

/**
 * Starts a registry and waits until GET /v2/ answers (401 counts when `auth` is set:
 * htpasswd with a bcrypt hash, as the appliance configures it). When `t` ends, the
 * registry is stopped and its folder removed.
 */
export async function startRegistry(t: Teardown, auth?: { username: string; password: string }, options: { tls?: boolean; descriptorCache?: boolean } = {}): Promise<TestRegistry> {
  const dir = await tempDir(t, 'airgap-registry-');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const authLines: string[] = [];
  const tls = options.tls ? await makeTls(dir) : undefined;
  if (auth) {
    await writeFile(join(dir, 'htpasswd'), `${auth.username}:${bcrypt.hashSync(auth.password, 10)}\n`);
    authLines.push(`auth: { htpasswd: { realm: airgap-test, path: ${join(dir, 'htpasswd')} } }`);
  }
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true }${options.descriptorCache ? ', cache: { blobdescriptor: inmemory }' : ''} }`,
      tls ? `http: { addr: 127.0.0.1:${port}, tls: { certificate: ${tls.certFile}, key: ${tls.keyFile} } }` : `http: { addr: 127.0.0.1:${port} }`,
      ...authLines,
      '',
    ].join('\n'),
  );
  const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
  const host = `127.0.0.1:${port}`;
  const stop = async () => void (child.kill('SIGTERM'), await child);
  t.teardown(stop);
  let ready = false;
  const answers = tls
    ? () => execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', tls.caFile, `https://${host}/v2/`], { reject: false }).then((r) => r.stdout === '200' || (auth !== undefined && r.stdout === '401'))
    : () => fetch(`http://${host}/v2/`).then((r) => r.ok || (auth !== undefined && r.status === 401), () => false);
  await waitFor(async () => child.exitCode !== null || (ready = await answers()), 10);
  if (ready) return { host, stop, dataDir: join(dir, 'data'), ...(tls ? { caFile: tls.caFile } : {}) };
  child.kill('SIGKILL');
  const result = await child;
  throw new Error(`docker-registry did not start on ${host}: ${String(result.stderr).slice(-2000)}`);
}
