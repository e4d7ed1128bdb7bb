/**
 * The audit trail with the real daemon: `airgap events` (--json lines, --since, --follow)
 * shows who did what, from where and how it ended, for logins, refused logins, reveals of
 * passwords, setup and imports; and each event reaches the syslog socket as one line
 * tagged `airgap`. journald cannot run here: the socket is a stand-in for its /dev/log (a
 * python3 datagram socket that keeps what it receives), fed by the real util-linux logger.
 */
import t from 'tap';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { writeSyntheticLayout } from '../helpers/fixtures.js';
import { AIRGAP, startDaemon, waitFor } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

interface Event { id: number; at: string; actor: string; kind: string; origin: string; outcome: string; message: string }

const work = await tempDir(t, 'airgap-events-');
const socket = join(work, 'log.sock');
const received = join(work, 'received');
await writeFile(join(work, 'syslog.py'), [
  'import socket, sys',
  'out = open(sys.argv[2], "ab", 0)',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("ready", flush=True)',
  'while True:',
  '    out.write(s.recv(65536) + b"\\n")',
  '',
].join('\n'));
const syslog = execa('python3', [join(work, 'syslog.py'), socket, received], { reject: false });
t.teardown(async () => {
  syslog.kill();
  await syslog;
});
await waitFor(async () => (await readFile(socket).catch((e: NodeJS.ErrnoException) => e.code)) !== 'ENOENT', 10);

const keys = await generateSigningKeys(join(work, 'keys'));
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'app', layers: [Buffer.alloc(50_000, 3)] }]);
await writeFile(join(work, 'bundle.yaml'), stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'e', version: '1.0.0', images: [{ source: 'oci:./images:app', target: 'apps/app:1' }] }));
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: work, privateKeyPath: keys.privateKeyPath })).path;

const daemon = await startDaemon(t, { env: { AIRGAP_SYSLOG_SOCKET: socket } });
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const details = JSON.parse((await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout) as { console: { url: string; username: string; password: string }; caCertificateBase64: string };
const caFile = join(work, 'ca.crt');
await writeFile(caFile, Buffer.from(details.caCertificateBase64, 'base64'));
const wrongLogin = () => execa('curl', ['-s', '-o', '/dev/null', '--cacert', caFile, '-H', 'content-type: application/json', '-d', JSON.stringify({ username: details.console.username, password: 'wrong' }), `${details.console.url}/api/v1/session`]);
await wrongLogin();
await execa('curl', ['-sf', '-o', '/dev/null', '--cacert', caFile, '-u', `${details.console.username}:${details.console.password}`, `${details.console.url}/api/v1/connection?reveal=true`]);
const imported = await daemon.cli(['import', bin]);
if (imported.exitCode !== 0) throw new Error(imported.stderr);

const jsonLines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Event);

t.test('airgap events --json: JSON lines with who, what, from where and the outcome', async (t) => {
  const r = await daemon.cli(['events', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const events = jsonLines(r.stdout);
  t.ok(events.every((e, i) => i === 0 || e.id > events[i - 1]!.id), 'oldest first');
  t.match(events.find((e) => e.kind === 'console.login_failed'), { actor: '127.0.0.1', origin: '127.0.0.1', outcome: 'failure' }, 'a refused login: failure, from the client');
  t.match(events.find((e) => e.kind === 'console.passwords_revealed'), { actor: details.console.username, origin: '127.0.0.1', outcome: 'success' }, 'a reveal of the passwords: who and from where');
  t.match(events.find((e) => e.kind === 'setup.applied'), { actor: 'cli', origin: 'admin-socket', outcome: 'success' });
  t.match(events.find((e) => e.kind === 'import.finished'), { actor: 'cli', outcome: 'success' });
  const text = await daemon.cli(['events']);
  t.match(text.stdout, /FAILED +127\.0\.0\.1 +127\.0\.0\.1 +console\.login_failed/);
  t.same(jsonLines((await daemon.cli(['events', '--since', '1h', '--json'])).stdout).map((e) => e.id), events.map((e) => e.id), '--since 1h: all of them');
  const future = new Date(Date.now() + 86_400_000).toISOString();
  t.same(jsonLines((await daemon.cli(['events', '--since', future, '--json'])).stdout), [], '--since tomorrow: none');
  t.equal((await daemon.cli(['events', '--since', 'yesterday'])).exitCode, 2, 'a --since it cannot read is a usage error');
});

t.test('airgap events --follow prints each new event as it is recorded; Ctrl-C ends it', async (t) => {
  const start = new Date().toISOString();
  const follower = execa(AIRGAP, ['events', '--follow', '--json', '--since', start, '--state-dir', daemon.stateDir], { reject: false });
  let out = '';
  follower.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  // A refused login each turn until the follower prints one: it may subscribe after the first.
  await waitFor(async () => {
    await wrongLogin();
    return jsonLines(out).some((e) => e.kind === 'console.login_failed');
  }, 20);
  follower.kill('SIGINT');
  const ended = await follower;
  t.equal(ended.exitCode, 0, 'Ctrl-C ends a follow without an error');
  const seen = jsonLines(out);
  t.ok(seen.some((e) => e.kind === 'console.login_failed' && e.outcome === 'failure'));
  t.ok(seen.every((e) => e.at >= start), 'only what was recorded since it started');
  t.equal(new Set(seen.map((e) => e.id)).size, seen.length, 'each event once');
});

t.test('each event reaches the syslog socket as a line tagged airgap', async (t) => {
  await waitFor(async () => /console\.passwords_revealed/.test(await readFile(received, 'utf8').catch(() => '')), 20);
  const lines = (await readFile(received, 'utf8')).split('\n').filter(Boolean);
  const reveal = lines.find((l) => l.includes('console.passwords_revealed'))!;
  t.match(reveal, /^<\d+>.*airgap(\[\d+\])?: \{/, 'RFC 3164 with the tag airgap');
  t.equal(Number(/^<(\d+)>/.exec(reveal)![1]) >> 3, 10, 'facility authpriv for a reveal of the passwords');
  const failed = lines.find((l) => l.includes('console.login_failed'))!;
  t.equal(Number(/^<(\d+)>/.exec(failed)![1]) & 7, 4, 'a failure at warning');
  t.match(JSON.parse(reveal.slice(reveal.indexOf('{'))), { kind: 'console.passwords_revealed', actor: details.console.username, origin: '127.0.0.1', outcome: 'success' });
  t.ok(lines.some((l) => l.includes('"kind":"import.finished"')), 'and the import');
});
