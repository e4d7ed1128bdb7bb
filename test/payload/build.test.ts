/**
 * Round trip on real content: a busybox image made with umoci, synthetic multi-layer and
 * multi-arch images, a chart, a pack and files go into a signed .bin; the reader accepts
 * it, `sh FILE --target` extracts it, and skopeo reads the extracted OCI layout with the
 * same digests as the sources. Also: docker:// sources from a real registry on loopback.
 */
import t from 'tap';
import { copyFile, mkdir, readFile, stat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { makeBusyboxLayout, writeSyntheticLayout, makeChart, makePack, makeFiles, writeBundle } from '../helpers/fixtures.js';
import { startRegistry } from '../helpers/registry.js';
import { runAirgap } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';
import { buildBundle } from '../../src/build/builder.js';
import { openPayload, verifyPayloadData, openEntryStream } from '../../src/format/reader.js';
import { generateSigningKeys, loadPublicKeys } from '../../src/format/keys.js';

const AIRGAP = join(import.meta.dirname, '..', '..', 'scripts', 'airgap');
const work = await tempDir(t, 'airgap-build-test-');
const keys = await generateSigningKeys(join(work, 'keys'));
const trustedKeys = await loadPublicKeys([keys.publicKeyPath]);

const shared = randomBytes(200_000);
const busyboxDigest = await makeBusyboxLayout(join(work, 'images'), work);
const synthetic = await writeSyntheticLayout(join(work, 'images'), [
  { ref: 'multi', layers: [shared, randomBytes(150_000), randomBytes(100_000)] },
  { ref: 'multiarch', layers: [shared, randomBytes(50_000)], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }] },
]);
await makeChart(join(work, 'charts'), 'hello', '0.1.0');
await makePack(join(work, 'packs'), 'cilium', '1.14.2');
const files = await makeFiles(join(work, 'manifests'));
await makeFiles(join(work, 'single'));
const spec = await writeBundle(work, {
  name: 'demo',
  version: '1.0.0',
  images: [
    { source: 'oci:./images:busybox', target: 'library/busybox:1.35' },
    { source: 'oci:./images:multi', target: 'apps/multi:v1' },
    { source: 'oci:./images:multiarch', target: 'apps/multiarch:v1' },
  ],
  charts: [{ source: './charts/hello-0.1.0.tgz' }],
  packs: [{ source: './packs/cilium' }],
  files: [
    { source: './manifests/', target: 'manifests/' },
    { source: './single/bin/tool', target: 'bin/airgap-tool' },
  ],
});
const result = await buildBundle({ specPath: spec, out: work, privateKeyPath: keys.privateKeyPath });
const bin = result.path;

t.test('the builder writes airgap-v<version>.bin, executable, signed', async (t) => {
  t.equal(bin, join(work, 'airgap-v1.0.0.bin'));
  t.equal((await stat(bin)).mode & 0o777, 0o755);
  t.equal(result.keyId, keys.keyId);
  t.same(result.images.map((i) => i.target), ['library/busybox:1.35', 'apps/multi:v1', 'apps/multiarch:v1']);
  t.same(result.charts.map((c) => c.target), ['charts/hello:0.1.0']);
  t.same(result.packs.map((p) => p.target), ['packs/cilium:1.14.2']);
  t.same(result.files.map((f) => f.target).sort(), ['bin/airgap-tool', 'manifests/a.yaml', 'manifests/big.bin', 'manifests/bin/tool', 'manifests/nested/b.yaml']);
  t.equal(result.files.find((f) => f.target === 'bin/airgap-tool')!.mode, 0o755);
  t.equal((await readdir(work)).filter((f) => f.endsWith('.partial')).length, 0, 'no partial file left');
});

t.test('the reader accepts it and the digests match the sources', async (t) => {
  const opened = await openPayload(bin, { trustedKeys });
  t.teardown(() => opened.close());
  await verifyPayloadData(opened);
  t.equal(opened.signature.status, 'verified');
  t.equal(opened.toc.images[0]!.digest, busyboxDigest);
  t.equal(opened.toc.images[1]!.digest, synthetic.multi!.digest);
  t.equal(opened.toc.images[2]!.digest, synthetic.multiarch!.digest);
  t.equal(opened.toc.images[2]!.mediaType, 'application/vnd.oci.image.index.v1+json');
  t.same(opened.toc.images[2]!.platforms, ['linux/amd64', 'linux/arm64/v8']);
  t.same(opened.toc.images[0]!.platforms, ['linux/amd64']);
  // the layer shared by two images is stored once
  const blobEntries = opened.entries.filter((e) => e.path.startsWith('oci/blobs/'));
  t.equal(new Set(blobEntries.map((e) => e.path)).size, blobEntries.length);
  t.equal(opened.entries[0]!.path, 'airgap.yaml');
  // a file read back by offset is the source file
  const chunks: Buffer[] = [];
  for await (const c of openEntryStream(opened, 'files/manifests/big.bin')) chunks.push(c as Buffer);
  t.ok(Buffer.concat(chunks).equals(files['big.bin']!));
});

t.test('sh FILE --target extracts an OCI layout skopeo reads with the same digests', async (t) => {
  const out = join(work, 'extracted');
  const r = await execa('sh', [bin, '--target', out]);
  t.match(r.stdout, /Integrity verified/);
  const inspect = async (ref: string) => JSON.parse((await execa('skopeo', ['inspect', `oci:${join(out, 'oci')}:${ref}`])).stdout) as { Digest: string; Architecture: string };
  t.equal((await inspect('library/busybox:1.35')).Digest, busyboxDigest);
  t.equal((await inspect('apps/multi:v1')).Digest, synthetic.multi!.digest);
  const raw = JSON.parse((await execa('skopeo', ['inspect', '--raw', `oci:${join(out, 'oci')}:apps/multiarch:v1`])).stdout) as { manifests: unknown[] };
  t.equal(raw.manifests.length, 2, 'the multi-arch index is kept whole');
  const chart = JSON.parse((await execa('skopeo', ['inspect', '--raw', `oci:${join(out, 'oci')}:charts/hello:0.1.0`])).stdout) as { config: { mediaType: string }; layers: Array<{ mediaType: string }> };
  t.equal(chart.config.mediaType, 'application/vnd.cncf.helm.config.v1+json');
  t.equal(chart.layers[0]!.mediaType, 'application/vnd.cncf.helm.chart.content.v1.tar+gzip');
  const pack = JSON.parse((await execa('skopeo', ['inspect', '--raw', `oci:${join(out, 'oci')}:packs/cilium:1.14.2`])).stdout) as { config: { mediaType: string } };
  t.equal(pack.config.mediaType, 'application/vnd.airgap.pack.config.v1+json');
  // the busybox image copies out whole and runs
  const copy = join(work, 'copy');
  await execa('skopeo', ['copy', `oci:${join(out, 'oci')}:library/busybox:1.35`, `oci:${copy}:bb`]);
  await execa('umoci', ['unpack', '--image', `${copy}:bb`, join(work, 'unpacked')]);
  const echo = await execa(join(work, 'unpacked', 'rootfs', 'bin', 'busybox'), ['echo', 'pulled back']);
  t.equal(echo.stdout, 'pulled back');
  t.ok((await readFile(join(out, 'files', 'manifests', 'big.bin'))).equals(files['big.bin']!));
  t.equal((await stat(join(out, 'files', 'bin', 'airgap-tool'))).mode & 0o111, 0o111, 'executables keep their mode');
  const toc = parseYaml(await readFile(join(out, 'airgap.yaml'), 'utf8')) as { name: string; version: string };
  t.equal(toc.version, '1.0.0');
});

t.test('the header runtime: every flag, with nothing but sh, coreutils and tar', async (t) => {
  const sh = (...args: string[]) => execa('sh', [bin, ...args], { reject: false, env: { PATH: '/usr/bin:/bin' }, extendEnv: false });
  const help = await sh('--help');
  t.equal(help.exitCode, 0);
  t.match(help.stdout, /--info[\s\S]*--list[\s\S]*--check[\s\S]*--target DIR[\s\S]*--noexec[\s\S]*--quiet/);
  const info = await sh('--info');
  t.equal(info.exitCode, 0);
  t.match(info.stdout, /Name:\s+demo\nVersion:\s+1\.0\.0\nCreated:\s+\d{4}-/);
  t.match(info.stdout, new RegExp(`Signed by:\\s+key ${keys.keyId}`));
  t.match(info.stdout, new RegExp(`Payload:\\s+${result.payloadSize} bytes`));
  const list = await sh('--list');
  t.equal(list.exitCode, 0);
  t.match(list.stdout, /airgap\.yaml\n[\s\S]*oci\/index\.json[\s\S]*files\/manifests\/a\.yaml/);
  const check = await sh('--check');
  t.equal(check.exitCode, 0);
  t.match(check.stdout, new RegExp(`Integrity verified: sha256 ${result.payloadSha256}`));
  const quiet = await sh('--check', '--quiet');
  t.equal(quiet.exitCode, 0);
  t.equal(quiet.stdout, '');
  const noexec = await sh('--noexec');
  t.equal(noexec.exitCode, 0, 'verify only');
  const target = join(work, 'extract-noexec');
  const extracted = await sh(`--target=${target}`, '--noexec', '--quiet');
  t.equal(extracted.exitCode, 0);
  t.ok((await stat(join(target, 'airgap.yaml'))).isFile());
  const bad = await sh('--bogus');
  t.equal(bad.exitCode, 2);
  t.match(bad.stderr, /unknown option '--bogus'/);
  const noDir = await sh('--target');
  t.equal(noDir.exitCode, 2);
  const emptyDir = await sh('--target=');
  t.equal(emptyDir.exitCode, 2);
  // default action where no appliance is installed
  const none = await sh();
  t.equal(none.exitCode, 3);
  t.match(none.stderr, /not an airgap appliance/);
  // ./FILE works the same as sh FILE
  const direct = await execa(bin, ['--info'], { reject: false });
  t.equal(direct.exitCode, 0);
  // the header passes shellcheck
  const header = join(work, 'header.sh');
  await execa('sh', ['-c', `head -c 16384 '${bin}' > '${header}'`]);
  const sc = await execa('shellcheck', ['-s', 'sh', header], { reject: false });
  t.equal(sc.exitCode, 0, sc.stdout);
});

t.test('the default action hands the verified file to `airgap import`', async (t) => {
  const fakeBin = join(work, 'fake-bin');
  await execa('mkdir', ['-p', fakeBin]);
  const log = join(work, 'import-args');
  await execa('sh', ['-c', `printf '#!/bin/sh\\necho "$@" > ${log}\\n' > ${fakeBin}/airgap && chmod +x ${fakeBin}/airgap`]);
  const r = await execa('sh', [bin], { reject: false, env: { PATH: `${fakeBin}:/usr/bin:/bin` }, extendEnv: false });
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /Integrity verified/);
  t.equal((await readFile(log, 'utf8')).trim(), `import ${bin}`);
});

t.test('sh --check refuses truncated, appended and flipped files', async (t) => {
  const bytes = await readFile(bin);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['truncated', bytes.subarray(0, bytes.length - 100), /truncated/],
    ['appended', Buffer.concat([bytes, Buffer.from('junk')]), /unexpected bytes after the payload/],
    ['flipped', Buffer.from(bytes).fill(0x41, bytes.length - 5000, bytes.length - 4999), /payload sha256 mismatch/],
    ['flipped TOC', Buffer.from(bytes).fill(0x41, 16384 + 600, 16384 + 601), /TOC sha256 mismatch/],
  ];
  for (const [what, content, message] of cases) {
    const path = join(work, `damaged-${what.replace(' ', '-')}.bin`);
    await execa('sh', ['-c', `cat > '${path}'`], { input: content });
    const r = await execa('sh', [path, '--check'], { reject: false });
    t.equal(r.exitCode, 1, what);
    t.match(r.stderr, message, what);
    const x = await execa('sh', [path, '--target', join(work, `x-${what}`)], { reject: false });
    t.equal(x.exitCode, 1, `${what}: nothing extracted`);
  }
});

t.test('airgap inspect prints the contents; --json has the digests', async (t) => {
  const human = await execa(AIRGAP, ['inspect', bin, '--key', keys.publicKeyPath]);
  t.match(human.stdout, /demo 1\.0\.0/);
  t.match(human.stdout, new RegExp(`verified, key ${keys.keyId}`));
  t.match(human.stdout, new RegExp(`library/busybox:1\\.35\\s+${busyboxDigest}`));
  t.match(human.stdout, /charts\/hello:0\.1\.0/);
  t.match(human.stdout, /packs\/cilium:1\.14\.2/);
  t.match(human.stdout, /manifests\/nested\/b\.yaml/);
  const json = JSON.parse((await execa(AIRGAP, ['inspect', bin, '--json'])).stdout) as {
    name: string;
    signature: { status: string };
    payload: { verified: boolean };
    images: { digest: string }[];
    files: unknown[];
  };
  t.equal(json.name, 'demo');
  t.equal(json.signature.status, 'unchecked');
  t.equal(json.payload.verified, true);
  t.equal(json.images[0]?.digest, busyboxDigest);
  t.equal(json.files.length, 5);
});

t.test('the CLI builds the same way; bad specs fail clearly and leave nothing', async (t) => {
  const out = join(work, 'cli-out');
  const r = await execa(AIRGAP, ['build', spec, '--out', `${out}/`, '--key', keys.privateKeyPath, '--json'], { reject: false });
  t.equal(r.exitCode, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { path: string; payloadSha256: string };
  t.equal(doc.path, join(out, 'airgap-v1.0.0.bin'));
  const missing = await writeBundle(join(work, 'charts'), { name: 'bad', version: '1.0.0', images: [{ source: 'oci:./nowhere:x', target: 'a/b:1' }] });
  const m = await execa(AIRGAP, ['build', missing, '--out', join(work, 'bad.bin')], { reject: false });
  t.equal(m.exitCode, 1);
  t.match(m.stderr, /oci:.*nowhere.*index\.json is missing/);
  await t.rejects(stat(join(work, 'bad.bin')));
  t.same((await readdir(work)).filter((f) => f.endsWith('.partial')), [], 'no partial file left');
  const typo = await writeBundle(join(work, 'packs'), { name: 'bad', version: '1.0', imagez: [] });
  const ty = await execa(AIRGAP, ['build', typo], { reject: false });
  t.equal(ty.exitCode, 1);
  t.match(ty.stderr, /unknown key 'imagez'/);
  const usage = await runAirgap(['build']);
  t.equal(usage.exitCode, 2);
  const flag = await runAirgap(['build', spec, '--frobnicate']);
  t.equal(flag.exitCode, 2);
  t.match(flag.stderr, /--frobnicate/);
  const dup = await writeBundle(join(work, 'single'), {
    name: 'dup',
    version: '1.0.0',
    images: [
      { source: `oci:${join(work, 'images')}:multi`, target: 'a/b:1' },
      { source: `oci:${join(work, 'images')}:busybox`, target: 'a/b:1' },
    ],
  });
  const d = await execa(AIRGAP, ['build', dup, '--out', join(work, 'dup.bin')], { reject: false });
  t.equal(d.exitCode, 1);
  t.match(d.stderr, /both target a\/b:1/);
  const key = await execa(AIRGAP, ['keygen', '--out', join(work, 'keys')], { reject: false });
  t.equal(key.exitCode, 1, 'keygen refuses to overwrite a key');
  t.equal((await stat(keys.privateKeyPath)).mode & 0o777, 0o600);
});

t.test('docker:// sources over HTTPS from a private CA: --ca-file; without it, a TLS error', async (t) => {
  const registry = await startRegistry(t, undefined, { tls: true });
  const certDir = await tempDir(t, 'airgap-build-certs-'); // skopeo takes a folder of CA .crt files
  await copyFile(registry.caFile!, join(certDir, 'ca.crt'));
  await execa('skopeo', ['copy', '--dest-cert-dir', certDir, `oci:${join(work, 'images')}:busybox`, `docker://${registry.host}/library/busybox:1.36`]);
  await mkdir(join(work, 'tls-spec'), { recursive: true });
  const spec = await writeBundle(join(work, 'tls-spec'), { name: 'tls', version: '1.0.0', images: [{ source: `docker://${registry.host}/library/busybox:1.36` }] });
  const untrusted = await execa(AIRGAP, ['build', spec, '--out', join(work, 'tls-untrusted.bin')], { reject: false });
  t.equal(untrusted.exitCode, 1);
  t.match(untrusted.stderr, /certificate|self.signed|unable to verify/i);
  const r = await execa(AIRGAP, ['build', spec, '--ca-file', registry.caFile!, '--out', join(work, 'tls.bin'), '--json'], { reject: false });
  t.equal(r.exitCode, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { images: Array<{ target: string }> }).images[0]!.target, 'library/busybox:1.36');
});

t.test('docker:// sources come from a real registry on loopback', async (t) => {
  const registry = await startRegistry(t);
  const layout = join(work, 'images');
  await execa('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:busybox`, `docker://${registry.host}/library/busybox:1.35`]);
  await execa('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multiarch`, `docker://${registry.host}/apps/multiarch:v1`]);
  const remoteSpec = await writeBundle(join(work, 'manifests', 'nested'), {
    name: 'remote',
    version: '2.0.0',
    images: [
      { source: `docker://${registry.host}/library/busybox:1.35` },
      { source: `docker://${registry.host}/apps/multiarch:v1`, target: 'mirror/multiarch:v1' },
    ],
  });
  const refused = await execa(AIRGAP, ['build', remoteSpec, '--out', join(work, 'remote.bin')], { reject: false });
  t.equal(refused.exitCode, 1, 'HTTPS by default');
  t.match(refused.stderr, /--insecure-registry/);
  const built = await buildBundle({ specPath: remoteSpec, out: join(work, 'remote.bin'), insecureRegistries: [registry.host] });
  t.same(built.images.map((i) => i.target), ['library/busybox:1.35', 'mirror/multiarch:v1']);
  const registryDigest = (JSON.parse((await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/library/busybox:1.35`])).stdout) as { Digest: string }).Digest;
  t.equal(built.images[0]!.digest, registryDigest);
  const rawIndex = (await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/apps/multiarch:v1`], { stripFinalNewline: false })).stdout;
  t.equal(built.images[1]!.digest, `sha256:${createHash('sha256').update(rawIndex).digest('hex')}`, 'the index comes through byte for byte');
  t.same(built.images[1]!.platforms, ['linux/amd64', 'linux/arm64/v8']);
  const opened = await openPayload(built.path);
  t.teardown(() => opened.close());
  await verifyPayloadData(opened);
  t.equal(opened.signature.status, 'unsigned');
  const notThere = await writeBundle(join(work, 'single', 'nested'), { name: 'x', version: '1.0.0', images: [{ source: `docker://${registry.host}/no/such:1` }] });
  const nf = await execa(AIRGAP, ['build', notThere, '--insecure-registry', registry.host, '--out', join(work, 'nf.bin')], { reject: false });
  t.equal(nf.exitCode, 1);
  t.match(nf.stderr, /not found \[AG_NOT_FOUND\]/);
});

t.test('docker:// with Basic auth: credentials from --registry-auth (a docker config.json)', async (t) => {
  const auth = { username: 'puller', password: 'correct horse battery staple' };
  const registry = await startRegistry(t, auth);
  await execa('skopeo', ['copy', '--dest-tls-verify=false', `--dest-creds=${auth.username}:${auth.password}`, `oci:${join(work, 'images')}:multi`, `docker://${registry.host}/apps/multi:v1`]);
  const authSpec = await writeBundle(join(work, 'images'), { name: 'authed', version: '1.0.0', images: [{ source: `docker://${registry.host}/apps/multi:v1` }] });
  const denied = await execa(AIRGAP, ['build', authSpec, '--insecure-registry', registry.host, '--out', join(work, 'authed.bin')], { reject: false });
  t.equal(denied.exitCode, 1);
  t.match(denied.stderr, /needs a username and password/);
  const authFile = join(work, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } } }));
  const ok = await execa(AIRGAP, ['build', authSpec, '--insecure-registry', registry.host, '--registry-auth', authFile, '--out', join(work, 'authed.bin'), '--json'], { reject: false });
  t.equal(ok.exitCode, 0, ok.stderr);
  const doc = JSON.parse(ok.stdout) as { images: Array<{ target: string; digest: string }> };
  t.equal(doc.images[0]!.target, 'apps/multi:v1');
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { username: auth.username, password: 'wrong' } } }));
  const wrong = await execa(AIRGAP, ['build', authSpec, '--insecure-registry', registry.host, '--registry-auth', authFile, '--out', join(work, 'authed2.bin')], { reject: false });
  t.equal(wrong.exitCode, 1);
  t.match(wrong.stderr, /access denied to user 'puller' \(401\)/, 'names the user the registry refused');
  await t.rejects(stat(join(work, 'authed2.bin')));
});

t.test('a dotfile in a files source is refused at build, with the file to remove', async (t) => {
  const dir = join(work, 'dotfiles');
  await makeFiles(join(dir, 'site'));
  await writeFile(join(dir, 'site', 'nested', '.env'), 'SECRET=1\n');
  const dotSpec = await writeBundle(dir, { name: 'dots', version: '1.0.0', files: [{ source: './site', target: 'site/' }] });
  const r = await execa(AIRGAP, ['build', dotSpec, '--out', join(dir, 'dots.bin')], { reject: false });
  t.equal(r.exitCode, 1, r.stderr);
  t.match(r.stderr, /file target 'site\/nested\/\.env' has a segment that starts with '\.' \('\.env'\).*\[AG_FILES\]\n {2}hint: remove .*site\/nested\/\.env from the files source/);
  await t.rejects(stat(join(dir, 'dots.bin')), 'no file written');
  const target = await writeBundle(dir, { name: 'dots', version: '1.0.0', files: [{ source: './site/a.yaml', target: '.htaccess' }] });
  const s = await execa(AIRGAP, ['build', target, '--out', join(dir, 'dots.bin')], { reject: false });
  t.equal(s.exitCode, 1, s.stderr);
  t.match(s.stderr, /files\[0\]\.target '\.htaccess' has a segment that starts with '\.'/);
});

t.test('Ctrl-C during a build waiting on a registry stops it; twice exits at once; neither leaves a work folder or partial file', async (t) => {
  // A registry that accepts connections and never answers: the build waits in its plan.
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const stalled = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    stalled.close(() => resolve());
  }));
  const host = `127.0.0.1:${(stalled.address() as { port: number }).port}`;
  const dir = await tempDir(t, 'airgap-build-interrupt-');
  const slow = await writeBundle(dir, { name: 'slow', version: '1.0.0', images: [{ source: `docker://${host}/team/app:1`, target: 'team/app:1' }] });
  for (const signals of [1, 2]) {
    const tmp = join(dir, `tmp-${signals}`);
    await mkdir(tmp);
    const connected = sockets.size;
    const child = execa(AIRGAP, ['build', slow, '--out', join(dir, 'out.bin'), '--insecure-registry', host, '--no-runtime', '--quiet'], { reject: false, env: { TMPDIR: tmp } });
    // Wait until the build has its work folder and is waiting on the registry.
    for (let i = 0; i < 200 && !((await readdir(tmp)).some((f) => f.startsWith('airgap-build-')) && sockets.size > connected); i++) await new Promise((r) => setTimeout(r, 50));
    t.ok((await readdir(tmp)).some((f) => f.startsWith('airgap-build-')), 'the build made its work folder');
    for (let i = 0; i < signals; i++) child.kill('SIGINT');
    const r = await child;
    t.equal(r.exitCode, 130, `${signals} SIGINT`);
    t.same(await readdir(tmp), [], 'no work folder left');
    t.same((await readdir(dir)).filter((f) => f.includes('out.bin')), [], 'no output and no partial file');
  }
});
