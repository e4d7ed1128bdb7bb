/**
 * `airgap node-config` with real clients: an image built from an upstream registry on
 * loopback is imported; then Debian's podman (vfs storage) and containerd's ctr (a
 * containerd started by the test on a private socket) pull it using only the files
 * node-config wrote, by the appliance's name and, with the upstream stopped, by its
 * original name through the mirror.
 */
import t from 'tap';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { makeBusyboxLayout, writeBundle } from '../helpers/fixtures.js';
import { startDaemon, waitFor } from '../helpers/appliance.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-node-config-');
const keys = await generateSigningKeys(join(work, 'keys'));
const upstream = await startRegistry(t);
const busyboxDigest = await makeBusyboxLayout(join(work, 'images'), work);
await execa('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(work, 'images')}:busybox`, `docker://${upstream.host}/library/busybox:1.35`]);
await mkdir(join(work, 'bundle'));
const spec = await writeBundle(join(work, 'bundle'), { name: 'nodes', version: '1.0.0', images: [{ source: `docker://${upstream.host}/library/busybox:1.35` }] });
const bin = (await buildBundle({ specPath: spec, out: join(work, 'nodes.bin'), privateKeyPath: keys.privateKeyPath, insecureRegistries: [upstream.host] })).path;

const daemon = await startDaemon(t);
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
await daemon.cli(['setup', '127.0.0.1']);
const imported = await daemon.cli(['import', bin]);
if (imported.exitCode !== 0) throw new Error(imported.stderr);
const appliance = `127.0.0.1:${daemon.ports.registry}`;
const out = join(work, 'node-config');

t.test('node-config writes the documented layout, secrets 0600', async (t) => {
  const r = await daemon.cli(['node-config', '--out', out, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { imageRegistry: string; upstreams: string[]; files: Array<{ path: string; mode: string }> };
  t.equal(report.imageRegistry, appliance);
  t.same(report.upstreams, [upstream.host], 'the upstream the image came from is mirrored');
  const packs = `127.0.0.1:${daemon.ports.packRegistry}`;
  for (const path of [
    `containerd/certs.d/${appliance}/hosts.toml`, `containerd/certs.d/${appliance}/ca.crt`, `containerd/certs.d/${upstream.host}/hosts.toml`,
    'containers/registries.conf.d/50-airgap.conf', `containers/certs.d/${appliance}/ca.crt`, `containers/certs.d/${packs}/ca.crt`, 'containers/auth.json',
    'rke2/registries.yaml', `docker/certs.d/${appliance}/ca.crt`, 'kubernetes/pull-secret.yaml', 'kubernetes/ca-configmap.yaml', 'README.md',
  ]) t.ok(await stat(join(out, path)).then((s) => s.isFile(), () => false), path);
  t.equal((await stat(join(out, 'containers/auth.json'))).mode & 0o777, 0o600, 'auth.json is 0600');
  t.equal((await stat(join(out, 'rke2/registries.yaml'))).mode & 0o777, 0o600);
  t.equal((await stat(out)).mode & 0o777, 0o700);
  const secret = await readFile(join(out, 'kubernetes/pull-secret.yaml'), 'utf8');
  const config = JSON.parse(Buffer.from(/\.dockerconfigjson: (\S+)/.exec(secret)![1]!, 'base64').toString()) as { auths: Record<string, { auth: string }> };
  t.ok(config.auths[appliance]?.auth, 'the pull secret holds the image registry account');
  t.equal((await daemon.cli(['node-config', '--out', out])).exitCode, 0, 'a second run writes over the first');
});

t.test('podman pulls with only the files node-config wrote: by the appliance name, and by the original name through the mirror', async (t) => {
  const storage = join(work, 'podman');
  // podman reads drop-ins only from /etc/containers/registries.conf.d: the test puts the
  // drop-in's text in the registries.conf it points podman at (the same TOML, section 2 of containers-registries.conf(5)).
  const confDir = join(work, 'containers-conf');
  await mkdir(confDir, { recursive: true });
  await writeFile(join(confDir, 'registries.conf'), `unqualified-search-registries = []\n${await readFile(join(out, 'containers/registries.conf.d/50-airgap.conf'), 'utf8')}`);
  const podman = (args: string[]) => execa('podman', ['--root', join(storage, 'root'), '--runroot', join(storage, 'run'), '--storage-driver', 'vfs', ...args], {
    env: { CONTAINERS_REGISTRIES_CONF: join(confDir, 'registries.conf') },
    reject: false,
  });
  t.teardown(() => podman(['system', 'reset', '--force']));
  const direct = await podman(['pull', '--authfile', join(out, 'containers/auth.json'), '--cert-dir', join(out, 'containers/certs.d', appliance), `${appliance}/library/busybox:1.35`]);
  t.equal(direct.exitCode, 0, direct.stderr);
  const digest = (await podman(['image', 'inspect', '--format', '{{.Digest}}', `${appliance}/library/busybox:1.35`])).stdout.trim();
  t.equal(digest, busyboxDigest, 'the image, digest for digest');

  await upstream.stop();
  const mirrored = await podman(['pull', '--authfile', join(out, 'containers/auth.json'), '--cert-dir', join(out, 'containers/certs.d', appliance), `${upstream.host}/library/busybox:1.35`]);
  t.equal(mirrored.exitCode, 0, mirrored.stderr);
  t.equal((await podman(['image', 'inspect', '--format', '{{.Digest}}', `${upstream.host}/library/busybox:1.35`])).stdout.trim(), busyboxDigest, 'the original name, served by the appliance');
});

t.test("containerd's ctr pulls with --hosts-dir at the generated certs.d, by both names", async (t) => {
  const root = join(work, 'containerd');
  await mkdir(root, { recursive: true });
  const socket = join(root, 'containerd.sock');
  await writeFile(join(root, 'config.toml'), [
    'version = 2',
    `root = "${join(root, 'root')}"`,
    `state = "${join(root, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '',
  ].join('\n'));
  const daemonProcess: ResultPromise = execa('containerd', ['--config', join(root, 'config.toml')], { reject: false, all: true });
  let log = '';
  daemonProcess.all?.on('data', (c: Buffer) => (log += c.toString()));
  t.teardown(async () => {
    daemonProcess.kill('SIGTERM');
    await daemonProcess;
  });
  const ctr = (args: string[]) => execa('ctr', ['--address', socket, '--namespace', 'airgap-test', ...args], { reject: false });
  await waitFor(async () => daemonProcess.exitCode !== null || (await ctr(['version'])).exitCode === 0, 30);
  t.equal(daemonProcess.exitCode, null, `containerd runs: ${log.slice(-500)}`);
  for (const ref of [`${appliance}/library/busybox:1.35`, `${upstream.host}/library/busybox:1.35`]) {
    const r = await ctr(['images', 'pull', '--hosts-dir', join(out, 'containerd/certs.d'), '--snapshotter', 'native', ref]);
    t.equal(r.exitCode, 0, `${ref}: ${r.stderr}`);
    const listed = await ctr(['images', 'ls']);
    t.match(listed.stdout, new RegExp(`${ref.replace(/[.:/]/g, (c) => `\\${c}`)}\\s+\\S+\\s+${busyboxDigest.replace(':', '\\:')}`), `${ref} by its digest`);
  }
});

t.test('the same files under the repository for nodes to fetch with curl, and as a tar from the console', async (t) => {
  const details = JSON.parse((await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout) as { repository: { url: string; username: string; password: string }; console: { username: string; password: string }; caCertificateBase64: string };
  const ca = join(work, 'ca.crt');
  await writeFile(ca, Buffer.from(details.caCertificateBase64, 'base64'));
  const repo = `${details.repository.username}:${details.repository.password}`;
  const denied = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca, `${details.repository.url}/node-config/containers/auth.json`]);
  t.equal(denied.stdout, '401', 'the repository account is needed');
  const hosts = await execa('curl', ['-sf', '--cacert', ca, '-u', repo, `${details.repository.url}/node-config/containerd/certs.d/${appliance}/hosts.toml`]);
  t.equal(hosts.stdout + '\n', await readFile(join(out, `containerd/certs.d/${appliance}/hosts.toml`), 'utf8'), 'a file, as node-config wrote it');
  const listing = JSON.parse((await execa('curl', ['-sf', '--cacert', ca, '-u', repo, `${details.repository.url}/node-config/`])).stdout) as { files: Array<{ path: string }> };
  t.ok(listing.files.some((f) => f.path === 'rke2/registries.yaml'), 'the list of files');
  const tarFile = join(work, 'from-repo.tar');
  await execa('curl', ['-sf', '--cacert', ca, '-u', repo, '-o', tarFile, `${details.repository.url}/node-config.tar`]);
  t.match((await execa('tar', ['tvf', tarFile])).stdout, /-rw------- .* node-config\/containers\/auth\.json/, 'the tar keeps the modes');
  const consoleTar = join(work, 'from-console.tar');
  await execa('curl', ['-sf', '--cacert', ca, '-u', `${details.console.username}:${details.console.password}`, '-o', consoleTar, `${details.repository.url}/api/v1/node-config`]);
  t.match((await execa('tar', ['tf', consoleTar])).stdout, /node-config\/README\.md/);
  const events = (await daemon.cli(['events', '--json'])).stdout;
  t.match(events, /"kind":"console\.node_config_downloaded"/, 'the console download is recorded');
});

