/**
 * The daemon end to end: `airgap serve` with its two real docker-registry processes on
 * 127.0.0.1, `airgap setup` through the admin socket, then curl and openssl with only
 * what setup printed (CA in base64, usernames, passwords).
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { SCHEMA_VERSION } from '../../src/appliance/store/db.js';
import { AIRGAP_SETUP, daemonHealthy, eventsSince, isAlive, lastEventId, registriesOf, registryPid, registryStatus, startDaemon, waitFor } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

interface Details {
  repository: { url: string; username: string; password: string };
  imageRegistry: { url: string; username: string; password: string };
  packRegistry: { url: string; username: string; password: string };
  console: { url: string; username: string; password: string };
  caCertificateBase64: string;
}

const work = await tempDir(t, 'airgap-daemon-test-');
const daemon = await startDaemon(t);

const first = await daemon.cli(['setup', '127.0.0.1', '--json']);
const details = JSON.parse(first.stdout) as Details;
const caFile = join(work, 'ca.crt');
await writeFile(caFile, Buffer.from(details.caCertificateBase64, 'base64'));

/** HTTP status of `curl --cacert <printed CA>` (never -k). */
async function curlStatus(url: string, user?: string): Promise<number> {
  const r = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, ...(user ? ['-u', user] : []), url], { reject: false });
  return Number(r.stdout);
}

t.test('setup prints the contract document with the configured ports', async (t) => {
  t.equal(first.exitCode, 0, first.stderr);
  const { ports } = daemon;
  t.equal(details.repository.url, `https://127.0.0.1:${ports.https}`);
  t.equal(details.console.url, `https://127.0.0.1:${ports.https}`);
  t.equal(details.imageRegistry.url, `https://127.0.0.1:${ports.registry}`);
  t.equal(details.packRegistry.url, `https://127.0.0.1:${ports.packRegistry}`);
  const passwords = [details.repository, details.imageRegistry, details.packRegistry, details.console].map((c) => c.password);
  t.equal(new Set(passwords).size, 4, 'every account has its own password');
  for (const p of passwords) t.match(p, /^[A-Za-z0-9]{24}$/);
  t.match(first.stderr, /Setup completed: repo address set\./, 'the certificate made at start already covers 127.0.0.1: no restart');
  const ca = new X509Certificate(Buffer.from(details.caCertificateBase64, 'base64'));
  t.ok(ca.ca, 'the base64 block is the CA certificate');
});

t.test('curl with the printed CA and credentials: 200; without or with a wrong password: 401', async (t) => {
  const { repository: repo, imageRegistry: images, packRegistry: packs } = details;
  await mkdir(join(daemon.stateDir, 'repo', '1.0.0'), { recursive: true });
  await writeFile(join(daemon.stateDir, 'repo', '1.0.0', 'hello.txt'), 'hello\n');
  for (const [url, c] of [
    [`${images.url}/v2/`, images],
    [`${packs.url}/v2/`, packs],
    [`${repo.url}/repo/`, repo],
    [`${repo.url}/repo/1.0.0/hello.txt`, repo],
  ] as const) {
    t.equal(await curlStatus(url, `${c.username}:${c.password}`), 200, `${url} with its credentials`);
    t.equal(await curlStatus(url), 401, `${url} without credentials`);
    t.equal(await curlStatus(url, `${c.username}:${c.password}x`), 401, `${url} with a wrong password`);
  }
  t.equal(await curlStatus(`${images.url}/v2/`, `${packs.username}:${packs.password}`), 401, 'the pack account does not open the image registry');
  const body = await execa('curl', ['-sf', '--cacert', caFile, '-u', `${repo.username}:${repo.password}`, `${repo.url}/repo/1.0.0/hello.txt`]);
  t.equal(body.stdout, 'hello');
  const insecure = await execa('curl', ['-s', '-o', '/dev/null', `${images.url}/v2/`], { reject: false });
  t.equal(insecure.exitCode, 60, 'curl without the CA refuses the certificate');
});

t.test('the http port serves /ca.crt and redirects everything else to https', async (t) => {
  const ca = await execa('curl', ['-sf', `http://127.0.0.1:${daemon.ports.http}/ca.crt`]);
  t.equal(`${ca.stdout}\n`, Buffer.from(details.caCertificateBase64, 'base64').toString());
  const redirect = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `http://127.0.0.1:${daemon.ports.http}/repo/x?y=1`]);
  t.equal(redirect.stdout, `301 https://127.0.0.1:${daemon.ports.https}/repo/x?y=1`);
});

t.test('openssl s_client: the registries and the repository present the repo IP in the SAN, chained to the CA', async (t) => {
  for (const port of [daemon.ports.registry, daemon.ports.packRegistry, daemon.ports.https]) {
    const r = await execa('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -CAfile ${caFile} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`]);
    t.match(r.stdout, /IP Address:127\.0\.0\.1/, `port ${port}`);
    const verify = await execa('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -CAfile ${caFile} -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1`], { reject: false });
    t.match(verify.stdout, /Verify return code: 0 \(ok\)/, `port ${port} verifies against the printed CA`);
  }
});

t.test('setup twice: identical output, nothing changed, no restart', async (t) => {
  const pids = [await registryPid(daemon.stateDir, 'images'), await registryPid(daemon.stateDir, 'packs')];
  const config = await stat(join(daemon.stateDir, 'registries', 'images', 'config.yml'));
  const cert = await readFile(join(daemon.stateDir, 'pki', 'server.crt'), 'utf8');
  const a = await daemon.cli(['setup', '127.0.0.1']);
  const b = await daemon.cli(['setup', '127.0.0.1']);
  t.equal(a.exitCode, 0);
  t.equal(a.stdout, b.stdout, 'same text both times');
  t.match(b.stderr, /Setup completed: nothing changed\./);
  const again = await daemon.cli(['setup', '127.0.0.1', '--json']);
  t.equal(again.stdout, first.stdout, 'same JSON as the first run');
  t.same([await registryPid(daemon.stateDir, 'images'), await registryPid(daemon.stateDir, 'packs')], pids, 'registries not restarted');
  t.equal((await stat(join(daemon.stateDir, 'registries', 'images', 'config.yml'))).mtimeMs, config.mtimeMs, 'config not rewritten');
  t.equal(await readFile(join(daemon.stateDir, 'pki', 'server.crt'), 'utf8'), cert, 'certificate kept');
  // The text form carries the same details.
  for (const c of [details.repository, details.imageRegistry, details.packRegistry, details.console]) {
    t.match(a.stdout, c.url);
    t.match(a.stdout, c.username);
    t.match(a.stdout, c.password);
  }
  t.match(a.stdout, /Registry CA certificate \(base64, one line\)\n[A-Za-z0-9+/=]+$/);
  t.match(a.stdout, details.caCertificateBase64);
});

t.test('airgap-setup is airgap setup', async (t) => {
  const r = await execa(AIRGAP_SETUP, ['127.0.0.1', '--json', '--state-dir', daemon.stateDir]);
  t.equal(r.stdout, first.stdout);
});

t.test('a new repo address re-issues the server certificate from the same CA', async (t) => {
  const before = [await registryPid(daemon.stateDir, 'images'), await registryPid(daemon.stateDir, 'packs')];
  const r = await daemon.cli(['setup', 'localhost', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const d = JSON.parse(r.stdout) as Details;
  t.equal(d.caCertificateBase64, details.caCertificateBase64, 'CA kept');
  t.same([d.imageRegistry.password, d.repository.password], [details.imageRegistry.password, details.repository.password], 'credentials kept');
  t.equal(d.imageRegistry.url, `https://localhost:${daemon.ports.registry}`);
  t.match(r.stderr, /server certificate issued; images and packs registries restarted/);
  const cert = new X509Certificate(await readFile(join(daemon.stateDir, 'pki', 'server.crt')));
  t.match(cert.subjectAltName, /^DNS:localhost/, 'the repo address comes first in the SAN');
  t.not(await registryPid(daemon.stateDir, 'images'), before[0], 'registries restarted with the new certificate');
  const https = await execa('sh', ['-c', `openssl s_client -connect 127.0.0.1:${daemon.ports.https} -CAfile ${caFile} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`]);
  t.match(https.stdout, cert.fingerprint256, 'the HTTPS server reloaded it without a restart');
  t.equal(await curlStatus(`${d.imageRegistry.url}/v2/`, `${d.imageRegistry.username}:${d.imageRegistry.password}`), 200, 'https://localhost works with the same CA');
  const back = await daemon.cli(['setup', '127.0.0.1', '--json']);
  t.equal(back.stdout, first.stdout);
});

t.test('an address that is not this machine\'s: a warning, and it is used', async (t) => {
  const r = await daemon.cli(['setup', '192.0.2.10', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stderr, /airgap: warning: 192\.0\.2\.10 is not an address of this machine's interfaces/);
  t.equal((JSON.parse(r.stdout) as Details).repository.url, `https://192.0.2.10:${daemon.ports.https}`);
  const back = await daemon.cli(['setup', '127.0.0.1']);
  t.notMatch(back.stderr, /warning/);
});

t.test('setup while a killed registry is coming back: one process per registry, both on the new certificate', async (t) => {
  process.kill(await registryPid(daemon.stateDir, 'images'), 'SIGKILL');
  const r = await daemon.cli(['setup', 'localhost']);
  t.equal(r.exitCode, 0, r.stderr);
  t.ok(await waitFor(async () => (await registriesOf(daemon.stateDir)).length === 2 && (await daemonHealthy(daemon.stateDir))), 'healthy again');
  t.equal((await registriesOf(daemon.stateDir)).length, 2, 'no extra or untracked process');
  for (const port of [daemon.ports.registry, daemon.ports.packRegistry]) {
    const san = await execa('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -CAfile ${caFile} </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`]);
    t.match(san.stdout, /DNS:localhost, IP Address:127\.0\.0\.1/, `port ${port} serves the localhost certificate`);
  }
  t.equal((await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout, first.stdout);
});

t.test('status reports every part', async (t) => {
  const r = await daemon.cli(['status', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const s = JSON.parse(r.stdout) as {
    healthy: boolean;
    repoAddress: string;
    registries: Array<{ name: string; state: string; healthy: boolean; version: string; pid: number }>;
    database: { schemaVersion: number; sizeBytes: number };
    disk: { totalBytes: number; freeBytes: number; path: string };
    certificate: { subjectAltNames: string[] };
  };
  t.equal(s.healthy, true);
  t.equal(s.repoAddress, '127.0.0.1');
  t.same(s.registries.map((x) => [x.name, x.state, x.healthy]), [['images', 'running', true], ['packs', 'running', true]]);
  t.match(s.registries[0]!.version, /^\d+\.\d+/);
  t.equal(s.database.schemaVersion, SCHEMA_VERSION);
  t.ok(s.disk.totalBytes > 0 && s.disk.freeBytes > 0);
  t.equal(s.disk.path, join(daemon.stateDir, 'registries'));
  t.equal(s.certificate.subjectAltNames[0], 'IP:127.0.0.1');
  const text = await daemon.cli(['status']);
  t.match(text.stdout, /airgap .*: healthy/);
  t.match(text.stdout, /images\s+https:\/\/127\.0\.0\.1:\d+\s+running\s+ok/);
});

/** The images registry once it runs, answers and has restarted `restarts` times, else undefined. */
async function imagesRunning(restarts: number) {
  const s = await registryStatus(daemon.stateDir, 'images').catch(() => undefined);
  return s && s.state === 'running' && s.healthy && s.restarts === restarts ? s : undefined;
}

t.test('a killed registry is restarted once, and exactly that kill is recorded', async (t) => {
  // Earlier tests killed this registry too: count from here, not from the daemon's start.
  const before = await registryStatus(daemon.stateDir, 'images');
  const since = await lastEventId(daemon.stateDir);
  const old = await registryPid(daemon.stateDir, 'images');
  t.equal(before.pid, old, 'the pid file names the supervised process');
  process.kill(old, 'SIGKILL');
  t.ok(await waitFor(async () => (await imagesRunning(before.restarts + 1)) !== undefined), 'running and answering again, restarts + 1');
  const after = await registryStatus(daemon.stateDir, 'images');
  t.equal(after.restarts - before.restarts, 1, 'one restart for one kill');
  t.not(after.pid, old, 'a new process');
  t.equal(await registryPid(daemon.stateDir, 'images'), after.pid, 'its pid file follows');
  t.equal(await curlStatus(`${details.imageRegistry.url}/v2/`, `${details.imageRegistry.username}:${details.imageRegistry.password}`), 200);
  const events = await eventsSince(daemon.stateDir, since);
  t.same(events.map((e) => e.kind), ['registry.exited', 'registry.restarted'], 'the exit and the restart, nothing else');
  t.match(events[0]?.data, { registry: 'images', signal: 'SIGKILL' });
  t.match(events[1]?.data, { registry: 'images', pid: after.pid });
});

t.test('the backoff starts over after a successful restart: two kills in a row each wait the first step', async (t) => {
  const before = await registryStatus(daemon.stateDir, 'images');
  const since = await lastEventId(daemon.stateDir);
  for (const n of [1, 2]) {
    const pid = await registryPid(daemon.stateDir, 'images');
    process.kill(pid, 'SIGKILL');
    t.ok(await waitFor(async () => ((await imagesRunning(before.restarts + n))?.pid ?? pid) !== pid), `kill ${n}: running again with a new pid (restarts + ${n})`);
  }
  const events = await eventsSince(daemon.stateDir, since);
  t.same(
    events.map((e) => [e.kind, e.data?.delaySeconds]),
    [['registry.exited', 1], ['registry.restarted', undefined], ['registry.exited', 1], ['registry.restarted', undefined]],
    'each exit is restarted after 1 s: the restart that answered its probe reset the backoff',
  );
  t.equal((await registryStatus(daemon.stateDir, 'images')).restarts - before.restarts, 2);
});

t.test('the daemon starts with its memory settings (young generation, glibc mapping threshold)', async (t) => {
  const pid = Number((await readFile(join(daemon.stateDir, 'daemon.pid'), 'utf8')).trim());
  const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  t.ok(args.includes('--max-semi-space-size=4'), args.join(' '));
  const env = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
  t.ok(env.includes('MALLOC_MMAP_THRESHOLD_=1048576'));
});

t.test('secrets and the admin socket are private', async (t) => {
  const mode = async (p: string) => (await stat(join(daemon.stateDir, p))).mode & 0o777;
  t.equal(await mode('.'), 0o700);
  t.equal(await mode('admin.sock'), 0o600);
  t.equal(await mode('airgap.db'), 0o600);
  t.equal(await mode('pki/ca.key'), 0o600);
  t.equal(await mode('pki/server.key'), 0o600);
  t.equal(await mode('registries/images/htpasswd'), 0o600);
  const htpasswd = await readFile(join(daemon.stateDir, 'registries', 'images', 'htpasswd'), 'utf8');
  t.match(htpasswd, new RegExp(`^${details.imageRegistry.username}:\\$2[aby]\\$`), 'bcrypt');
  t.notMatch(htpasswd, details.imageRegistry.password);
});

t.test('SIGTERM stops the daemon and both registries, even during a slow download; a restart keeps CA and credentials', async (t) => {
  const pids = [await registryPid(daemon.stateDir, 'images'), await registryPid(daemon.stateDir, 'packs')];
  await writeFile(join(daemon.stateDir, 'repo', '1.0.0', 'big.bin'), Buffer.alloc(20 * 1024 * 1024));
  const partial = join(work, 'big.bin.part');
  const slow = execa('curl', ['-s', '-o', partial, '--limit-rate', '100k', '--cacert', caFile, '-u', `${details.repository.username}:${details.repository.password}`, `${details.repository.url}/repo/1.0.0/big.bin`], { reject: false });
  t.ok(await waitFor(async () => ((await stat(partial).catch(() => undefined))?.size ?? 0) > 0), 'the download is under way');
  const stopping = Date.now();
  const result = await daemon.stop();
  t.ok(Date.now() - stopping < 10_000, 'stopped without waiting for the download');
  slow.kill(); // what the kernel had buffered still trickles in; the daemon is gone
  await slow;
  t.equal(result.exitCode, 0, daemon.output().slice(-2000));
  t.ok(await waitFor(() => pids.every((p) => !isAlive(p)), 5), 'no registry left running');
  t.notOk(await stat(join(daemon.stateDir, 'admin.sock')).then(() => true, () => false), 'socket removed');
  t.notOk(await stat(join(daemon.stateDir, 'daemon.pid')).then(() => true, () => false), 'pid file removed');
  const down = await daemon.cli(['status']);
  t.equal(down.exitCode, 1);
  t.match(down.stderr, /the airgap daemon is not running .*\[AG_DAEMON_DOWN\]\n {2}hint: start it: airgap serve/);

  const again = await startDaemon(t, { stateDir: daemon.stateDir, ports: daemon.ports });
  const r = await again.cli(['setup', '127.0.0.1', '--json']);
  t.equal(r.stdout, first.stdout, 'same CA, URLs and credentials after a restart');
  t.match(r.stderr, /nothing changed/);
});
