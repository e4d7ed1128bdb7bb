/**
 * The whole flow of the product on loopback: build signed .bin files, start the appliance
 * (real docker-registry processes), run airgap-setup, import, and get everything back with
 * standard tools (skopeo, curl, umoci) using only what setup printed. Then re-import,
 * upgrade, refusals that change nothing, and the ./airgap-v<version>.bin way in.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, truncate, writeFile, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import Database from 'better-sqlite3';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys, loadPrivateKey } from '../../src/format/keys.js';
import { openPayload } from '../../src/format/reader.js';
import { blobPath, digestOfBlobPath } from '../../src/format/layout.js';
import { makeBusyboxLayout, writeSyntheticLayout, makeChart, makePack, makeFiles, layerTar } from '../helpers/fixtures.js';
import { parse as parseYaml, stringify } from 'yaml';
import { craftBin } from '../helpers/craft.js';
import { startDaemon } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

interface Details {
  repository: { url: string; username: string; password: string };
  imageRegistry: { url: string; username: string; password: string };
  packRegistry: { url: string; username: string; password: string };
  caCertificateBase64: string;
}

interface Result {
  status: string;
  action: string;
  version: string;
  images: number;
  charts: number;
  packs: number;
  files: number;
  blobsPushed: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesPushed: number;
  seconds: number;
}

const work = await tempDir(t, 'airgap-import-test-');
const keys = await generateSigningKeys(join(work, 'keys'));

// Content: busybox (umoci), a three-layer image, a multi-arch image sharing a layer, a chart, a pack, files.
const shared = randomBytes(300_000);
const kept = randomBytes(250_000);
const busyboxDigest = await makeBusyboxLayout(join(work, 'images'), work);
const v1Images = await writeSyntheticLayout(join(work, 'images'), [
  { ref: 'app-1', layers: [shared, kept, randomBytes(200_000)] },
  { ref: 'multiarch', layers: [shared, randomBytes(50_000)], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }] },
]);
const changedLayer = randomBytes(220_000);
/** writeSyntheticLayout names layer i `layer-<i>.bin`: the changed one is the third. */
const changedLayerDigest = `sha256:${createHash('sha256').update(layerTar('layer-2.bin', changedLayer)).digest('hex')}`;
const v2Images = await writeSyntheticLayout(join(work, 'images'), [{ ref: 'app-2', layers: [shared, kept, changedLayer] }]);
// An unquoted appVersion, as many public charts have it: Helm reads the string "1.16".
await makeChart(join(work, 'charts'), 'hello', '0.1.0', 'apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: 1.16\ndescription: test chart\n');
await makePack(join(work, 'packs'), 'cilium', '1.14.2');
const files = await makeFiles(join(work, 'manifests'));

async function build(version: string, images: Array<{ source: string; target: string }>, signed = true, out = work): Promise<string> {
  const spec = join(work, `bundle-${version}-${signed ? 's' : 'u'}-${images.length}.yaml`);
  await writeFile(spec, stringify({
    apiVersion: 'airgap/v1',
    kind: 'Bundle',
    name: 'demo',
    version,
    images,
    charts: [{ source: './charts/hello-0.1.0.tgz' }],
    packs: [{ source: './packs/cilium' }],
    files: [{ source: './manifests/', target: 'manifests/' }],
  }));
  await mkdir(out, { recursive: true });
  const result = await buildBundle({ specPath: spec, out, ...(signed ? { privateKeyPath: keys.privateKeyPath } : {}) });
  return result.path;
}

const baseImages = [
  { source: 'oci:./images:busybox', target: 'library/busybox:1.35' },
  { source: 'oci:./images:multiarch', target: 'apps/multiarch:1' },
];
const v1 = await build('1.0.0', [...baseImages, { source: 'oci:./images:app-1', target: 'apps/app:1' }]);
const v2 = await build('1.1.0', [...baseImages, { source: 'oci:./images:app-2', target: 'apps/app:2' }], true, join(work, 'v2'));

const daemon = await startDaemon(t);
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const setup = await daemon.cli(['setup', '127.0.0.1', '--json']);
const details = JSON.parse(setup.stdout) as Details;
const certDir = join(work, 'certs');
await mkdir(certDir);
await writeFile(join(certDir, 'ca.crt'), Buffer.from(details.caCertificateBase64, 'base64'));
const registryHost = details.imageRegistry.url.replace('https://', '');
const packHost = details.packRegistry.url.replace('https://', '');
const imageCreds = `${details.imageRegistry.username}:${details.imageRegistry.password}`;
const packCreds = `${details.packRegistry.username}:${details.packRegistry.password}`;

async function importFile(file: string, extra: string[] = []): Promise<{ exitCode: number | undefined; result?: Result; stderr: string; stdout: string }> {
  const r = await daemon.cli(['import', file, '--json', ...extra]);
  return { exitCode: r.exitCode, stderr: r.stderr, stdout: r.stdout, ...(r.exitCode === 0 ? { result: JSON.parse(r.stdout) as Result } : {}) };
}

/** sha256 of the manifest skopeo gets for `ref` with the printed CA and credentials. */
async function remoteDigest(ref: string, creds = imageCreds, host = registryHost): Promise<string> {
  const raw = await execa('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', creds, `docker://${host}/${ref}`], { encoding: 'buffer', stripFinalNewline: false });
  return `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`;
}

/** What a refused import must not change: catalogs, tags, releases. */
async function boxState(): Promise<string> {
  const catalog = async (url: string, creds: string) => (await execa('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${url}/v2/_catalog`])).stdout;
  const releases = (await daemon.cli(['releases', '--json'])).stdout;
  const tags = [];
  for (const repo of ['library/busybox', 'apps/app', 'apps/multiarch', 'charts/hello']) {
    tags.push((await execa('curl', ['-s', '--cacert', join(certDir, 'ca.crt'), '-u', imageCreds, `${details.imageRegistry.url}/v2/${repo}/tags/list`])).stdout);
  }
  return JSON.stringify([await catalog(details.imageRegistry.url, imageCreds), await catalog(details.packRegistry.url, packCreds), releases, tags]);
}

t.test('first import: everything lands where docs/cli.md says', async (t) => {
  const r = await importFile(v1);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.result, { status: 'imported', action: 'install', version: '1.0.0', images: 3, charts: 1, packs: 1, files: Object.keys(files).length });
  t.ok(r.result!.blobsPushed > 0 && r.result!.bytesPushed > 0);
  t.ok(r.result!.blobsMounted >= 1, 'the layer shared by two repositories is mounted, not uploaded twice');
});

t.test('skopeo with the printed CA and credentials gets the same digests as the sources', async (t) => {
  t.equal(await remoteDigest('library/busybox:1.35'), busyboxDigest);
  t.equal(await remoteDigest('apps/app:1'), v1Images['app-1']!.digest);
  t.equal(await remoteDigest('apps/multiarch:1'), v1Images.multiarch!.digest, 'the multi-arch index is kept whole');
  const opened = await openPayload(v1);
  const chart = opened.toc.charts[0]!;
  const pack = opened.toc.packs[0]!;
  await opened.close();
  t.equal(await remoteDigest('charts/hello:0.1.0'), chart.digest, 'the chart is in the image registry');
  t.equal(await remoteDigest('packs/cilium:1.14.2', packCreds, packHost), pack.digest, 'the pack is in the pack registry');
  const wrong = await execa('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', packCreds, `docker://${registryHost}/library/busybox:1.35`], { reject: false });
  t.not(wrong.exitCode, 0, 'the pack account cannot read the image registry');
});

t.test('the busybox image pulled back with skopeo runs', async (t) => {
  const pulled = join(work, 'pulled');
  await execa('skopeo', ['copy', '--src-cert-dir', certDir, '--src-creds', imageCreds, `docker://${registryHost}/library/busybox:1.35`, `oci:${pulled}:busybox`]);
  const bundle = join(work, 'unpacked');
  const rootless = process.getuid?.() !== 0;
  await execa('umoci', ['unpack', ...(rootless ? ['--rootless'] : []), '--image', `${pulled}:busybox`, bundle]);
  const run = rootless
    ? await execa(join(bundle, 'rootfs', 'bin', 'busybox'), ['echo', 'hello from the air gap'])
    : await execa('chroot', [join(bundle, 'rootfs'), '/bin/sh', '-c', 'echo hello from the air gap']);
  t.equal(run.stdout, 'hello from the air gap');
});

t.test('curl gets the files and releases.json with the repository credentials', async (t) => {
  const creds = `${details.repository.username}:${details.repository.password}`;
  for (const [target, content] of Object.entries(files)) {
    const r = await execa('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${details.repository.url}/repo/1.0.0/manifests/${target}`], { encoding: 'buffer', stripFinalNewline: false });
    t.ok(Buffer.from(r.stdout).equals(content), target);
  }
  const releases = JSON.parse((await execa('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), '-u', creds, `${details.repository.url}/repo/releases.json`])).stdout) as { current: string; releases: Array<{ version: string; files: Array<{ path: string }> }> };
  t.equal(releases.current, '1.0.0');
  t.same(releases.releases[0]!.files.map((f) => f.path).sort(), Object.keys(files).map((f) => `1.0.0/manifests/${f}`).sort());
});

t.test("charts as Helm reads them: the config in the registry, the classic repository's index.yaml and archive", async (t) => {
  const curl = async (args: string[]) => ({ stdout: Buffer.from((await execa('curl', ['-s', '--cacert', join(certDir, 'ca.crt'), ...args], { encoding: 'buffer', stripFinalNewline: false })).stdout) });
  // The seed's checks: the catalog lists charts/hello, its tags the version.
  const catalog = JSON.parse((await curl(['-u', imageCreds, `${details.imageRegistry.url}/v2/_catalog`])).stdout.toString()) as { repositories: string[] };
  t.ok(catalog.repositories.includes('charts/hello'), '/v2/_catalog lists charts/hello');
  t.same(JSON.parse((await curl(['-u', imageCreds, `${details.imageRegistry.url}/v2/charts/hello/tags/list`])).stdout.toString()), { name: 'charts/hello', tags: ['0.1.0'] });
  const manifest = JSON.parse((await curl(['-u', imageCreds, '-H', 'accept: application/vnd.oci.image.manifest.v1+json', `${details.imageRegistry.url}/v2/charts/hello/manifests/0.1.0`])).stdout.toString()) as { config: { digest: string } };
  const config = JSON.parse((await curl(['-u', imageCreds, '-L', `${details.imageRegistry.url}/v2/charts/hello/blobs/${manifest.config.digest}`])).stdout.toString()) as Record<string, unknown>;
  t.same(config, { name: 'hello', version: '0.1.0', description: 'test chart', apiVersion: 'v2', appVersion: '1.16' }, "Helm's Metadata: appVersion a string");

  // The classic repository: behind the repository account, as airgap setup prints it.
  const repo = `${details.repository.url}/charts`;
  t.equal((await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(certDir, 'ca.crt'), `${repo}/index.yaml`])).stdout, '401', 'no credentials, no index');
  const creds = `${details.repository.username}:${details.repository.password}`;
  const index = parseYaml((await curl(['-f', '-u', creds, `${repo}/index.yaml`])).stdout.toString()) as { apiVersion: string; entries: Record<string, Array<{ version: string; appVersion: string; urls: string[]; digest: string; created: string }>> };
  t.equal(index.apiVersion, 'v1');
  const entry = index.entries.hello![0]!;
  t.match(entry, { version: '0.1.0', appVersion: '1.16', urls: ['hello-0.1.0.tgz'] });
  const archive = (await curl(['-f', '-u', creds, `${repo}/${entry.urls[0]!}`])).stdout;
  t.ok(archive.equals(await readFile(join(work, 'charts', 'hello-0.1.0.tgz'))), 'the archive is the chart as built');
  t.equal(entry.digest, createHash('sha256').update(archive).digest('hex'), "index.yaml's digest is the archive's sha256");
  t.match((await daemon.cli(['setup', '127.0.0.1'])).stdout, /helm repo add airgap https:\/\/127\.0\.0\.1:\d+\/charts --username \S+ --password-stdin --ca-file airgap-ca\.crt/, 'airgap setup prints the helm repo add line');
});

t.test('re-import of the installed release: unchanged, nothing pushed', async (t) => {
  const r = await importFile(v1);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.result, { status: 'unchanged', blobsPushed: 0, bytesPushed: 0 });
  t.ok(r.result!.seconds < 1, `${r.result!.seconds} s`);
});

t.test('re-import of the installed release with a tag gone: the quick check declines, the import repairs it', async (t) => {
  // The tag's link in the registry's storage (distribution's layout), as a lost or removed tag leaves it.
  const tagDir = join(daemon.stateDir, 'registries', 'images', 'data', 'docker', 'registry', 'v2', 'repositories', 'apps', 'app', '_manifests', 'tags', '1');
  await rm(tagDir, { recursive: true });
  const r = await importFile(v1);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.result, { status: 'imported', action: 'repair', tagsPushed: 1, blobsPushed: 0 });
  const again = await importFile(v1);
  t.match(again.result, { status: 'unchanged', action: 'none' }, 'whole again');
});

// Refusals: each leaves catalogs, tags and releases as they were.
t.test('refused files change nothing', async (t) => {
  const before = await boxState();
  const refusals: Array<[string, () => Promise<string>, RegExp]> = [
    ['unsigned', () => build('1.2.0', baseImages, false, join(work, 'unsigned')), /AG_UNSIGNED/],
    ['truncated', async () => {
      const f = join(work, 'truncated.bin');
      await copyFile(v2, f);
      await truncate(f, (await stat(f)).size - 1000);
      return f;
    }, /AG_TRUNCATED/],
    ['path traversal', async () => {
      const f = join(work, 'traversal.bin');
      await craftBin(f, { version: '1.3.0', key: (await loadPrivateKey(keys.privateKeyPath)).key, entries: [{ path: 'files/../../../etc/cron.d/x', data: Buffer.from('* * * * * root id\n') }] });
      return f;
    }, /has a '..' segment \[AG_TOC_INVALID\]/],
    ['a file name the box could not write', async () => {
      const f = join(work, 'long-name.bin');
      await craftBin(f, { version: '1.3.1', key: (await loadPrivateKey(keys.privateKeyPath)).key, entries: [{ path: `files/${'n'.repeat(250)}`, data: Buffer.from('x\n') }] });
      return f;
    }, /has a segment longer than 240 bytes \[AG_TOC_INVALID\]/],
    ['a version the box could not write', async () => {
      const f = join(work, 'long-version.bin');
      const long = `1.3.2-${'v'.repeat(240)}`;
      await craftBin(f, {
        key: (await loadPrivateKey(keys.privateKeyPath)).key,
        entries: [{ path: 'files/a.txt', data: Buffer.from('x\n') }],
        toc: (toc) => ({ ...toc, version: long }),
        editHeader: (h) => h.replace('VERSION="1.0.0"', `VERSION="${long}"`),
      });
      return f;
    }, /VERSION.*\[AG_HEADER\]/],
    ['tampered layer', async () => {
      // Flip one byte inside the layer that only v2 has: found while it streams, before any tag moves.
      const f = join(work, 'tampered.bin');
      await copyFile(v2, f);
      const opened = await openPayload(f);
      const entry = opened.byPath.get(blobPath(changedLayerDigest));
      await opened.close();
      const fh = await open(f, 'r+');
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, entry!.offset + 1000);
      byte[0] = byte[0]! ^ 0xff;
      await fh.write(byte, 0, 1, entry!.offset + 1000);
      await fh.close();
      return f;
    }, /does not match its digest \(the registry refused it\); the file is damaged \[AG_ENTRY_DIGEST\]/],
  ];
  for (const [what, make, code] of refusals) {
    const r = await importFile(await make());
    t.equal(r.exitCode, 1, what);
    t.match(r.stderr, code, what);
    t.match(r.stderr, /hint: /, `${what}: says what to do next`);
    t.equal(await boxState(), before, `${what}: catalog, tags and releases unchanged`);
  }
  const db = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  t.same(db.prepare('SELECT version, current FROM releases').all(), [{ version: '1.0.0', current: 1 }]);
  db.close();
});

t.test('upgrade: pushes only the blobs that changed; the new release becomes current', async (t) => {
  const one = await openPayload(v1);
  const two = await openPayload(v2);
  const oldBlobs = new Set(one.entries.map((e) => digestOfBlobPath(e.path)).filter(Boolean));
  const newBytes = two.entries.filter((e) => digestOfBlobPath(e.path) && !oldBlobs.has(digestOfBlobPath(e.path))).reduce((n, e) => n + e.size, 0);
  await one.close();
  await two.close();
  const r = await importFile(v2);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.result, { status: 'imported', action: 'upgrade', version: '1.1.0' });
  t.ok(r.result!.bytesPushed <= newBytes, `pushed ${r.result!.bytesPushed} bytes; new blobs are ${newBytes} bytes`);
  t.ok(r.result!.bytesPushed >= changedLayer.length, 'the changed layer was pushed');
  t.equal((r.result as unknown as { manifestsPushed: number }).manifestsPushed, 1, 'only the new image manifest is pushed; the registry has the others (HEAD)');
  t.equal(await remoteDigest('apps/app:2'), v2Images['app-2']!.digest);
  t.equal(await remoteDigest('apps/app:1'), v1Images['app-1']!.digest, 'the earlier release stays pullable');
  const releases = JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string };
  t.equal(releases.current, '1.1.0');
  const status = JSON.parse((await daemon.cli(['status', '--json'])).stdout) as { release: { current: string; installed: number }; imports: unknown[] };
  t.same([status.release.current, status.release.installed, status.imports.length], ['1.1.0', 2, 0], 'status shows the current release and no import in progress');
  t.match((await daemon.cli(['status'])).stdout, /release +demo 1\.1\.0 \(2 on the box\)/);
  t.match((await daemon.cli(['releases'])).stdout, new RegExp(`^\\* +1\\.1\\.0 +demo .* 3 +1 +1 +${Object.keys(files).length} +[\\d.]+ [kMG]?B +- *$`, 'm'), 'the table: images, charts, packs, the count of files, disk use; the current release frees nothing');
  const images = JSON.parse((await daemon.cli(['images', '--json'])).stdout) as { images: Array<{ target: string; releases: string[] }> };
  t.same(images.images.find((i) => i.target === 'library/busybox:1.35')?.releases, ['1.0.0', '1.1.0'], 'one line per image, with the releases that carry it');
});

t.test('diff by digest: two releases on the box, and a release and a .bin', async (t) => {
  interface Kind { added: Array<{ target: string; digest: string }>; removed: Array<{ target: string }>; changed: unknown[]; unchanged: number }
  const boxed = await daemon.cli(['diff', '1.0.0', '1.1.0', '--json']);
  t.equal(boxed.exitCode, 0, boxed.stderr);
  const d = JSON.parse(boxed.stdout) as { from: string; to: string; images: Kind; charts: Kind; packs: Kind; files: Kind; bytesAddedOrChanged: number };
  t.same([d.from, d.to], ['1.0.0', '1.1.0']);
  t.same(d.images.added.map((i) => [i.target, i.digest]), [['apps/app:2', v2Images['app-2']!.digest]]);
  t.same(d.images.removed.map((i) => i.target), ['apps/app:1']);
  t.same([d.images.changed.length, d.images.unchanged], [0, 2], 'busybox and the multi-arch image stay');
  t.same([d.charts.unchanged, d.packs.unchanged, d.files.unchanged], [1, 1, Object.keys(files).length]);
  t.ok(d.bytesAddedOrChanged > 0);
  const bin = JSON.parse((await daemon.cli(['diff', '1.1.0', v1, '--json'])).stdout) as { to: string; images: Kind };
  t.match(bin.to, /^1\.0\.0 \(/, 'TO may be a .bin: its version and file');
  t.same(bin.images.added.map((i) => i.target), ['apps/app:1']);
  t.match((await daemon.cli(['diff', '1.0.0', '1.1.0'])).stdout, /images: 1 added, 1 removed, 0 changed, 2 unchanged/);
  const missing = await daemon.cli(['diff', '0.9.0', '1.1.0']);
  t.equal(missing.exitCode, 2);
  t.match(missing.stderr, /there is no release 0\.9\.0 on the box/);
});

t.test('an older release is refused unless --allow-downgrade', async (t) => {
  const old = await build('0.9.0', baseImages, true, join(work, 'old'));
  const before = await boxState();
  const again = await importFile(v1);
  t.equal(again.exitCode, 1, 'an installed release that is not current is an older release too');
  t.match(again.stderr, /1\.0\.0 is older than the current release 1\.1\.0 \[AG_DOWNGRADE\]/);
  t.equal(await boxState(), before, 'no tag moved back');
  const refused = await importFile(old);
  t.equal(refused.exitCode, 1);
  t.match(refused.stderr, /0\.9\.0 is older than the current release 1\.1\.0 \[AG_DOWNGRADE\]\n {2}hint: .*--allow-downgrade/);
  t.equal(await boxState(), before);
  const allowed = await importFile(old, ['--allow-downgrade']);
  t.equal(allowed.exitCode, 0, allowed.stderr);
  t.match(allowed.result, { action: 'downgrade', blobsPushed: 0 });
  t.equal((JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string }).current, '0.9.0');
});

t.test('the same version with other content is refused', async (t) => {
  const other = await build('1.0.0', baseImages, true, join(work, 'other'));
  const r = await importFile(other);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /release 1\.0\.0 is already on the box with different content .*\[AG_VERSION_CONFLICT\]/);
});

t.test('charts and packs keep their namespaces: an image may not take a chart tag', async (t) => {
  const evil = await build('5.0.0', [{ source: 'oci:./images:busybox', target: 'charts/hello:0.1.0' }], true, join(work, 'evil')).catch((err: Error) => err);
  if (evil instanceof Error) {
    t.match(evil.message, /charts/, 'the builder refuses it already');
    return;
  }
  const before = await boxState();
  const r = await importFile(evil);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /the image target 'charts\/hello:0\.1\.0' is not allowed: images may not use charts\/ or packs\/ \[AG_LAYOUT\]/);
  t.equal(await boxState(), before);
});

t.test('./airgap-v<version>.bin on the box: verify, then import, in the original words', async (t) => {
  const v3 = await build('1.2.0', baseImages, true, join(work, 'v3'));
  const r = await execa(v3, [], {
    reject: false,
    env: { AIRGAP_STATE_DIR: daemon.stateDir, PATH: `${join(import.meta.dirname, '..', '..', 'scripts')}:${process.env.PATH}` },
    all: true,
  });
  t.equal(r.exitCode, 0, String(r.all));
  const out = String(r.all);
  const order = ['Integrity verified', 'Setting up Images', 'Setting up Charts', 'Setting up Packs', 'Setting up Files', 'Setup Completed: demo 1.2.0 upgraded from 0.9.0'];
  let at = -1;
  for (const line of order) {
    const i = out.indexOf(line);
    t.ok(i > at, `'${line}' comes next`);
    at = i;
  }
});

t.test('a releases.json that cannot be written does not undo a committed import', async (t) => {
  const list = join(daemon.stateDir, 'repo', 'releases.json');
  const { rm } = await import('node:fs/promises');
  await rm(list);
  await mkdir(list); // a folder in its place: the rename onto it fails
  const v4 = await build('1.3.0', baseImages, true, join(work, 'v4'));
  const r = await importFile(v4);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal((JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string }).current, '1.3.0');
  const db = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  t.same(db.prepare("SELECT state FROM imports ORDER BY id DESC LIMIT 1").get(), { state: 'imported' });
  t.ok((db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'repo.releases_json_failed'").get() as { n: number }).n >= 1, 'the failure is an event');
  db.close();
  await rm(list, { recursive: true });
});

t.test('releases delete: what only that release names goes, kept releases pull whole, garbage collection gives the disk back', async (t) => {
  const { readdir: list, stat: statOf } = await import('node:fs/promises');
  const dataBytes = async (dir: string): Promise<number> => {
    let n = 0;
    for (const e of await list(dir, { withFileTypes: true })) n += e.isDirectory() ? await dataBytes(join(dir, e.name)) : (await statOf(join(dir, e.name))).size;
    return n;
  };
  const data = join(daemon.stateDir, 'registries', 'images', 'data');
  const before = await dataBytes(data);
  const current = (JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string }).current;
  const refused = await daemon.cli(['releases', 'delete', current]);
  t.equal(refused.exitCode, 2, 'the current release is never deleted');
  t.match(refused.stderr, /is the current release/);
  t.equal((await daemon.cli(['releases', 'delete', '0.0.1'])).exitCode, 2, 'nor one that is not there');

  const r = await daemon.cli(['releases', 'delete', '1.0.0', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { version: string; manifestsDeleted: number; filesRemoved: boolean; gc: { bytesReclaimed: number; registries: Array<{ name: string }> } };
  t.equal(result.version, '1.0.0');
  t.ok(result.manifestsDeleted >= 1, `${result.manifestsDeleted} manifests only 1.0.0 named`);
  t.ok(result.filesRemoved);
  t.same(result.gc.registries.map((g) => g.name), ['images', 'packs'], 'garbage-collect ran on both registries');
  // The app's third layer (200,000 random bytes) was 1.0.0's alone.
  t.ok(result.gc.bytesReclaimed >= 200_000, `garbage collection gave back ${result.gc.bytesReclaimed} bytes`);
  t.ok(before - (await dataBytes(data)) >= 200_000, 'and the registry storage is that much smaller');

  const tags = JSON.parse((await execa('curl', ['-s', '--cacert', join(certDir, 'ca.crt'), '-u', imageCreds, `${details.imageRegistry.url}/v2/apps/app/tags/list`])).stdout) as { tags: string[] | null };
  t.notOk((tags.tags ?? []).includes('1'), "1.0.0's tag is gone");
  t.equal(await remoteDigest('apps/app:2'), v2Images['app-2']!.digest, 'a kept release is still there');
  const pulled = join(work, 'pulled-after-delete');
  await execa('skopeo', ['copy', '--src-cert-dir', certDir, '--src-creds', imageCreds, `docker://${registryHost}/apps/app:2`, `oci:${pulled}:app`]);
  t.pass('and pulls whole: every blob it names survived garbage collection');
  t.equal(await remoteDigest('library/busybox:1.35'), busyboxDigest, 'a shared image stays');
  const releases = JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { releases: Array<{ version: string }> };
  t.notOk(releases.releases.some((x) => x.version === '1.0.0'), 'its record is gone');
  await t.rejects(statOf(join(daemon.stateDir, 'repo', '1.0.0')), 'and its files');

  const again = await daemon.cli(['gc', '--json']);
  t.equal(again.exitCode, 0, again.stderr);
  t.ok((JSON.parse(again.stdout) as { bytesReclaimed: number }).bytesReclaimed < 200_000, 'a second collection finds little to give back');
  const db = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  t.same(db.prepare("SELECT kind FROM events WHERE kind IN ('release.deleted', 'gc.finished') ORDER BY id").all().map((e) => (e as { kind: string }).kind), ['release.deleted', 'gc.finished', 'gc.finished'], 'each is an event');
  db.close();
});

t.test('a delete a stop interrupted is finished by the next start', async (t) => {
  t.equal((await daemon.stop()).exitCode, 0);
  // As a daemon killed between recording the delete and finishing it leaves the database.
  const db = new Database(join(daemon.stateDir, 'airgap.db'));
  db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('maintenance.deleting', '1.1.0', ?)").run(new Date().toISOString());
  db.close();
  const again = await startDaemon(t, { stateDir: daemon.stateDir, ports: daemon.ports });
  const releases = JSON.parse((await again.cli(['releases', '--json'])).stdout) as { current: string; releases: Array<{ version: string }> };
  t.notOk(releases.releases.some((x) => x.version === '1.1.0'), 'the delete was finished at start');
  t.equal(await remoteDigest('library/busybox:1.35'), busyboxDigest, 'what kept releases name is whole');
  const check = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  t.same(check.prepare("SELECT value FROM settings WHERE key = 'maintenance.deleting'").get(), undefined, 'nothing is pending');
  t.ok((check.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'release.deleted' AND actor = 'daemon'").get() as { n: number }).n === 1);
  check.close();

  // prune: the current release and the newest other one stay.
  const versions = releases.releases.map((x) => x.version);
  t.ok(versions.length >= 3, `releases on the box: ${versions.join(', ')}`);
  const dry = JSON.parse((await again.cli(['prune', '--keep', '2', '--dry-run', '--json'])).stdout) as { kept: string[]; deleted: string[]; gc: unknown };
  t.equal(dry.kept[0], releases.current, 'the current release is kept first');
  t.same([dry.kept.length, dry.deleted.length, dry.gc], [2, versions.length - 2, null]);
  t.equal((JSON.parse((await again.cli(['releases', '--json'])).stdout) as { releases: unknown[] }).releases.length, versions.length, 'a dry run deletes nothing');
  const pruned = JSON.parse((await again.cli(['prune', '--keep', '2', '--json'])).stdout) as { kept: string[]; deleted: string[]; gc: { bytesReclaimed: number } };
  t.same(pruned.deleted, dry.deleted);
  t.same((JSON.parse((await again.cli(['releases', '--json'])).stdout) as { releases: Array<{ version: string }> }).releases.map((x) => x.version).sort(), [...dry.kept].sort());
  t.equal((await again.cli(['prune', '--keep', '0'])).exitCode, 2);

  // A pending delete of what is the current release now (imported again since) is abandoned.
  t.equal((await again.stop()).exitCode, 0);
  const write = new Database(join(daemon.stateDir, 'airgap.db'));
  write.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('maintenance.deleting', ?, ?)").run(releases.current, new Date().toISOString());
  write.close();
  const third = await startDaemon(t, { stateDir: daemon.stateDir, ports: daemon.ports });
  t.equal((JSON.parse((await third.cli(['releases', '--json'])).stdout) as { current: string }).current, releases.current, 'the current release stays');
  const last = new Database(join(daemon.stateDir, 'airgap.db'), { readonly: true });
  t.equal((last.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'release.delete_abandoned'").get() as { n: number }).n, 1, 'and an event says the delete was abandoned');
  t.same(last.prepare("SELECT value FROM settings WHERE key = 'maintenance.deleting'").get(), undefined);
  last.close();
});
