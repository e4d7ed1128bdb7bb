/**
 * Bad input and faults of `airgap serve` and `airgap setup`: each gets one clear
 * sentence and a non-zero exit, and leaves no lock, socket or registry process behind.
 */
import t, { type Test } from 'tap';
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../../src/appliance/store/db.js';
import { airgap, daemonHealthy, freePorts, isAlive, registriesOf, registryPid, serveArgs, startDaemon, waitFor } from '../helpers/appliance.js';
import { runAirgap } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Asserts that a failed start left nothing running or locked. */
async function assertClean(t: Test, stateDir: string): Promise<void> {
  t.notOk(await exists(join(stateDir, 'daemon.pid')), 'no pid file left');
  t.notOk(await exists(join(stateDir, 'admin.sock')), 'no socket left');
  t.same(await registriesOf(stateDir), [], 'no registry process left');
}

/** A state dir of its own, removed when `t` ends. */
const newStateDir = (t: Test) => tempDir(t, 'airgap-faults-');

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

t.test('usage errors exit 2 with one sentence (in-process: no daemon is asked)', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['serve', '--https-port', '70000'], /--https-port must be a port number from 1 to 65535, not '70000'/],
    [['serve', '--address', 'example.com'], /--address must be an IP address/],
    [['serve', '--registry-port', '9000', '--pack-registry-port', '9000'], /ports must differ/],
    [['setup'], /missing argument/],
    [['setup', 'http://10.0.0.5'], /'http:\/\/10\.0\.0\.5' is not an IPv4 address, an IPv6 address or a DNS name/],
    [['setup', '10.0.0.5:443'], /is not an IPv4 address/],
    [['setup', '1.2.3'], /is not an IPv4 address/],
    [['setup', 'fe80::1%eth0'], /is not an IPv4 address/],
    [['setup', '0.0.0.0'], /0\.0\.0\.0 is the unspecified address, not an address clients can reach/],
    [['setup', '[::]'], /:: is the unspecified address/],
    [['setup', '239.1.1.1'], /is a multicast address/],
    [['setup', '-x'], /Unknown option '-x'/],
    [['status', 'extra'], /unexpected argument 'extra'/],
  ];
  for (const [args, message] of cases) {
    const r = await runAirgap(args);
    t.equal(r.exitCode, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stdout, '');
  }
});

t.test('setup and status without a daemon say how to start one', async (t) => {
  const stateDir = await newStateDir(t);
  for (const verb of [['setup', '10.0.0.5'], ['status']]) {
    const r = await airgap([...verb, '--state-dir', stateDir]);
    t.equal(r.exitCode, 1);
    t.match(r.stderr, /airgap: error: the airgap daemon is not running \(no answer on .*admin\.sock\) \[AG_DAEMON_DOWN\]\n {2}hint: start it: airgap serve --state-dir/);
  }
});

t.test('a port in use: clear error, nothing left running', async (t) => {
  for (const which of ['registry', 'https'] as const) {
    const stateDir = await newStateDir(t);
    const ports = await freePorts();
    const blocker = await listen(ports[which]);
    const r = await airgap(serveArgs(stateDir, ports));
    blocker.close();
    t.equal(r.exitCode, 1, which);
    t.match(r.stderr, new RegExp(`port ${ports[which]} on 127\\.0\\.0\\.1 is already in use \\[AG_PORT_IN_USE\\]\\n  hint: .*--${which === 'https' ? 'https-port' : 'registry-port'}`));
    await assertClean(t, stateDir);
  }
});

t.test('a missing docker-registry binary, or one that dies at start', async (t) => {
  const stateDir = await newStateDir(t);
  const missing = await airgap(serveArgs(stateDir, await freePorts()), { AIRGAP_REGISTRY_BIN: '/nonexistent/docker-registry' });
  t.equal(missing.exitCode, 1);
  t.match(missing.stderr, /the registry program '\/nonexistent\/docker-registry' is not installed \(not found on PATH\) \[AG_REGISTRY_BINARY\]\n {2}hint: install Debian's docker-registry package/);
  await assertClean(t, stateDir);

  const dies = await airgap(serveArgs(stateDir, await freePorts()), { AIRGAP_REGISTRY_BIN: '/bin/false' });
  t.equal(dies.exitCode, 1);
  t.match(dies.stderr, /the images registry exited at start: code 1, no output \[AG_REGISTRY_START\]/);
  await assertClean(t, stateDir);
});

t.test('an unusable state dir', async (t) => {
  const dir = await newStateDir(t);
  await writeFile(join(dir, 'a-file'), 'x');
  const r = await airgap(serveArgs(join(dir, 'a-file', 'state'), await freePorts()));
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /the state dir .*a-file\/state is not usable: .* \[AG_STATE_DIR\]\n {2}hint: run as root, or pass --state-dir/);
  t.equal(await readFile(join(dir, 'a-file'), 'utf8'), 'x', 'nothing written in its place');
});

t.test('a state dir another user could write is refused at start, with the fix', async (t) => {
  const dir = await newStateDir(t);
  const cases: Array<[string, () => Promise<void>, RegExp]> = [
    ['world-writable', () => chmod(dir, 0o777), /the state dir .* is world-writable \(mode 0777\), .* \[AG_UNSAFE_PERMISSIONS\]\n {2}hint: run 'chmod 0755 .*'/],
    ['group-writable', () => chmod(dir, 0o770), /is group-writable \(mode 0770\).*\n {2}hint: run 'chmod 0750 /],
    ['owned by another user', async () => (await chmod(dir, 0o700), await chown(dir, 65534, 65534)), /is owned by uid 65534, .* \[AG_UNSAFE_PERMISSIONS\]\n {2}hint: run 'chown 0 /],
  ];
  for (const [what, spoil, message] of cases) {
    await spoil();
    const r = await airgap(serveArgs(dir, await freePorts()));
    t.equal(r.exitCode, 1, what);
    t.match(r.stderr, message, what);
    await assertClean(t, dir);
    t.same(await readdir(dir), [], `${what}: nothing written in it`);
  }
  await chown(dir, 0, 0);
});

t.test('a damaged CA or a newer database is refused, not replaced', async (t) => {
  const daemon = await startDaemon(t);
  await daemon.stop();
  const ca = await readFile(join(daemon.stateDir, 'pki', 'ca.crt'));
  await writeFile(join(daemon.stateDir, 'pki', 'ca.crt'), 'not a certificate\n');
  const r = await airgap(serveArgs(daemon.stateDir, daemon.ports));
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /the appliance CA in .*pki is damaged: .*\[AG_CA_UNREADABLE\]\n {2}hint: restore ca\.crt and ca\.key from a backup/);
  t.equal(await readFile(join(daemon.stateDir, 'pki', 'ca.crt'), 'utf8'), 'not a certificate\n', 'left for the admin to restore');
  await assertClean(t, daemon.stateDir);
  await writeFile(join(daemon.stateDir, 'pki', 'ca.crt'), ca);

  const db = new Database(join(daemon.stateDir, 'airgap.db'));
  db.pragma('user_version = 99');
  db.close();
  const newer = await airgap(serveArgs(daemon.stateDir, daemon.ports));
  t.equal(newer.exitCode, 1);
  t.match(newer.stderr, new RegExp(`the database has schema 99, newer than this airgap's ${SCHEMA_VERSION} \\[AG_DB_NEWER\\]`));
  await assertClean(t, daemon.stateDir);
});

t.test('a stale pid file of another program (pid reused after a hard reset) does not block the start', async (t) => {
  const stateDir = await newStateDir(t);
  await writeFile(join(stateDir, 'daemon.pid'), `${process.pid}\n`); // alive, but not an airgap daemon
  const daemon = await startDaemon(t, { stateDir });
  t.equal((await daemon.cli(['status'])).exitCode, 0);
});

t.test('one daemon per state dir; a killed daemon leaves orphans that the next one stops', async (t) => {
  const daemon = await startDaemon(t);
  const second = await airgap(serveArgs(daemon.stateDir, await freePorts()));
  t.equal(second.exitCode, 1);
  t.match(second.stderr, /another airgap daemon \(pid \d+\) is running with the state dir/);
  t.equal((await daemon.cli(['status'])).exitCode, 0, 'the first one still serves');

  const orphans = [await registryPid(daemon.stateDir, 'images'), await registryPid(daemon.stateDir, 'packs')];
  daemon.child.kill('SIGKILL');
  await daemon.child;
  t.ok(orphans.every(isAlive), 'SIGKILL of the daemon leaves its registries running');

  const next = await startDaemon(t, { stateDir: daemon.stateDir, ports: daemon.ports });
  t.ok(await waitFor(() => orphans.every((p) => !isAlive(p)), 5), 'the orphans are stopped');
  t.equal(await daemonHealthy(next.stateDir), true);
  const db = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  const stopped = db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'registry.orphan_stopped'").get() as { n: number };
  db.close();
  t.equal(stopped.n, 2, 'both recorded as events');
});
