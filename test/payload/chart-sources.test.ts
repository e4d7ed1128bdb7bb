/**
 * Chart sources in bundle.yaml: a classic Helm repository served by a real static server
 * (python's http.server on 127.0.0.1: index.yaml with a relative and an absolute URL, the
 * .tgz files), and an OCI registry (CNCF distribution) holding a chart as helm push writes
 * it. The build resolves a version range, checks the index's digest, records where each
 * chart came from, and writes configs Helm decodes.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { makeChart, writeBundle, writeSyntheticLayout } from '../helpers/fixtures.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';
import { buildBundle } from '../../src/build/builder.js';
import { chartArtifact } from '../../src/build/artifacts.js';
import { pickVersion } from '../../src/build/chart-source.js';
import { openPayload, openEntryStream } from '../../src/format/reader.js';
import { RegistryClient } from '../../src/oci/client.js';
import { loadRegistryAuth } from '../../src/oci/auth-file.js';

const AIRGAP = join(import.meta.dirname, '..', '..', 'scripts', 'airgap');
const work = await tempDir(t, 'airgap-chart-sources-');
const repoDir = join(work, 'repo');
await mkdir(join(repoDir, 'charts'), { recursive: true });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** clearml at three versions, with what public charts have: an unquoted appVersion. */
const versions = ['7.14.6', '7.14.7', '7.15.0-rc.1'];
const entries: Array<Record<string, unknown>> = [];
for (const version of versions) {
  const tgz = await makeChart(join(work, 'made'), 'clearml', version, `apiVersion: v2\nname: clearml\nversion: ${version}\nappVersion: 1.16\nannotations:\n  category: 3\n`);
  await rename(tgz, join(repoDir, 'charts', `clearml-${version}.tgz`));
  const bytes = await readFile(join(repoDir, 'charts', `clearml-${version}.tgz`));
  entries.push({ apiVersion: 'v2', name: 'clearml', version, appVersion: '1.16', urls: [`charts/clearml-${version}.tgz`], digest: sha256(bytes), created: '2024-10-05T12:03:07.123456789Z' });
}
// A chart whose archive is not what the index says.
await rename(await makeChart(join(work, 'made'), 'tampered', '1.0.0'), join(repoDir, 'charts', 'tampered-1.0.0.tgz'));
const index = {
  apiVersion: 'v1',
  entries: {
    clearml: entries,
    tampered: [{ name: 'tampered', version: '1.0.0', urls: ['charts/tampered-1.0.0.tgz'], digest: 'f'.repeat(64) }],
  },
  generated: '2024-10-05T12:03:07Z',
};
await writeFile(join(repoDir, 'index.yaml'), stringify(index));

/** python3 -m http.server on 127.0.0.1 serving `dir`; its URL once it listens. */
async function staticServer(dir: string): Promise<string> {
  const child = execa('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir], { reject: false, buffer: false });
  t.teardown(async () => {
    child.kill('SIGTERM');
    await child;
  });
  const port = await new Promise<string>((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const m = /port (\d+)/.exec(seen);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`http.server exited: ${seen}`)));
  });
  return `http://127.0.0.1:${port}`;
}
const repoUrl = await staticServer(repoDir);

/** The config blob of chart `target` in a built .bin. */
async function chartConfig(bin: string, target: string): Promise<Record<string, unknown>> {
  const opened = await openPayload(bin);
  try {
    const chart = opened.toc.charts.find((c) => c.target === target)!;
    const read = async (digest: string) => {
      const chunks: Buffer[] = [];
      for await (const c of openEntryStream(opened, `oci/blobs/sha256/${digest.slice(7)}`)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    const manifest = JSON.parse((await read(chart.digest)).toString()) as { config: { digest: string } };
    return JSON.parse((await read(manifest.config.digest)).toString()) as Record<string, unknown>;
  } finally {
    await opened.close();
  }
}

t.test('pickVersion: the exact version, else the newest in the range; pre-releases only when named', async (t) => {
  t.equal(pickVersion(versions, '7.14.6'), '7.14.6');
  t.equal(pickVersion(versions, '7.14.x'), '7.14.7');
  t.equal(pickVersion(versions, '>=7.14.0, <8'), '7.14.7', "Helm's comma means and");
  t.equal(pickVersion(versions, '^7'), '7.14.7');
  t.equal(pickVersion(versions, '7.15.0-rc.1'), '7.15.0-rc.1');
  t.equal(pickVersion(versions, '>=8'), undefined);
  t.equal(pickVersion(['v0.4.0', 'v0.3.0'], '0.x'), 'v0.4.0', 'a v-prefixed version Helm accepts');
  t.equal(pickVersion(['1.2', '1.1.9', '2'], '^1'), '1.2', "and 1.2, which Helm reads as 1.2.0");
});

t.test('a chart from a Helm repository and one from an OCI registry', async (t) => {
  // An OCI registry with a chart as helm push writes it.
  const registry = await startRegistry(t);
  const hello = await chartArtifact(await makeChart(join(work, 'made'), 'hello', '0.1.0'));
  const client = new RegistryClient({ registry: registry.host, insecure: true });
  for (const blob of [hello.config, { descriptor: hello.layer.descriptor, bytes: await readFile(hello.layer.file) }]) {
    await client.uploadBlob('charts/hello', blob.descriptor.digest, blob.descriptor.size, () => Readable.from([blob.bytes]));
  }
  await client.putManifest('charts/hello', '0.1.0', hello.manifest.descriptor.mediaType, hello.manifest.bytes);
  client.close();

  const dir = join(work, 'both');
  await mkdir(dir);
  const spec = await writeBundle(dir, {
    name: 'sources',
    version: '1.0.0',
    charts: [
      { repo: `${repoUrl}/`, name: 'clearml', version: '7.14.x' },
      { source: `oci://${registry.host}/charts/hello:0.1.0` },
    ],
  });
  const result = await buildBundle({ specPath: spec, out: dir, insecureRegistries: [registry.host] });
  t.same(result.charts.map((c) => [c.target, c.source]), [
    ['charts/clearml:7.14.7', `${repoUrl}/charts/clearml-7.14.7.tgz`],
    ['charts/hello:0.1.0', `oci://${registry.host}/charts/hello:0.1.0@${hello.manifest.descriptor.digest}`],
  ], 'the range resolved to the newest release, and where each came from is recorded');
  const opened = await openPayload(result.path);
  t.same(opened.toc.charts.map((c) => c.source), result.charts.map((c) => c.source), 'the TOC records it');
  await opened.close();
  const config = await chartConfig(result.path, 'charts/clearml:7.14.7');
  t.equal(config.appVersion, '1.16', "appVersion as Helm's string");
  t.same(config.annotations, { category: '3' });
  t.match(result.warnings.join('\n'), /appVersion: a number in YAML/);
  const helloManifest = (await chartConfig(result.path, 'charts/hello:0.1.0')).name;
  t.equal(helloManifest, 'hello');
  t.same(result.charts.find((c) => c.target === 'charts/hello:0.1.0')!.digest, hello.manifest.descriptor.digest, "a chart helm push wrote keeps its manifest's digest");
});

t.test('refusals: a digest that does not match, no such version, credentials in the URL; nothing is left', async (t) => {
  const dir = join(work, 'bad');
  await mkdir(dir);
  const attempt = async (chart: Record<string, string>) => {
    const spec = await writeBundle(dir, { name: 'bad', version: '1.0.0', charts: [chart] });
    return buildBundle({ specPath: spec, out: dir });
  };
  await t.rejects(attempt({ repo: repoUrl, name: 'tampered', version: '1.0.0' }), { code: 'AG_CHART', message: /does not match the digest in .*index.yaml/ });
  await t.rejects(attempt({ repo: repoUrl, name: 'clearml', version: '>=8' }), { code: 'AG_CHART', message: /no version of clearml .* matches '>=8'/ });
  await t.rejects(attempt({ repo: repoUrl, name: 'nope', version: '1.0.0' }), { code: 'AG_CHART', message: /has no chart 'nope'/ });
  await t.rejects(attempt({ repo: repoUrl.replace('http://', 'http://admin:secret@'), name: 'clearml', version: '7.14.7' }), { code: 'AG_SPEC', message: /credentials in its URL/ });
  await t.rejects(attempt({ repo: repoUrl, name: 'clearml' }), { code: 'AG_SPEC', message: /needs either source/ });
  t.same((await readdir(dir)).filter((f) => f.endsWith('.bin') || f.includes('partial')), [], 'no .bin and no partial file');
});

t.test('a repository that asks for credentials gets them from --registry-auth, for its host only', async (t) => {
  const server = createServer((req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from('reader:s3cret').toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="charts"' }).end();
      return;
    }
    fetch(`${repoUrl}${req.url}`).then(async (r) => res.writeHead(r.status).end(Buffer.from(await r.arrayBuffer())), () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const dir = join(work, 'auth');
  await mkdir(dir);
  const spec = await writeBundle(dir, { name: 'auth', version: '1.0.0', charts: [{ repo: `http://${host}`, name: 'clearml', version: '7.14.6' }] });
  await t.rejects(buildBundle({ specPath: spec, out: dir }), { code: 'AG_SOURCE', message: /answered 401/, hint: /--registry-auth/ });
  await writeFile(join(dir, 'auth.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('reader:s3cret').toString('base64') } } }));
  const result = await buildBundle({ specPath: spec, out: dir, credentials: await loadRegistryAuth(join(dir, 'auth.json')) });
  t.same(result.charts.map((c) => c.target), ['charts/clearml:7.14.6']);
});

t.test('images: auto, fromManifests and fromList carry the images with their upstream digests; --dry-run writes nothing', async (t) => {
  // The upstream registry holds the images the chart and the manifests name.
  const upstream = await startRegistry(t);
  const layout = join(work, 'upstream-layout');
  const made = await writeSyntheticLayout(layout, [
    { ref: 'web', layers: [randomBytes(30_000)] },
    { ref: 'worker', layers: [randomBytes(20_000)] },
    { ref: 'cron', layers: [randomBytes(10_000)] },
  ]);
  const upstreamRef = { web: `${upstream.host}/apps/web:2.0`, worker: `${upstream.host}/apps/worker:1.0`, cron: `${upstream.host}/apps/cron:1.0` };
  for (const [ref, to] of Object.entries(upstreamRef)) await execa('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${ref}`, `docker://${to}`]);

  // A chart in the Helm repository that names two of them: a values image map and a literal in a template.
  const chartYaml = 'apiVersion: v2\nname: webapp\nversion: 1.0.0\nappVersion: "2.0"\n';
  const tgz = await makeChart(join(work, 'made'), 'webapp', '1.0.0', chartYaml);
  const src = join(work, 'made', 'chart-src', 'webapp');
  await writeFile(join(src, 'values.yaml'), `image:\n  registry: ${upstream.host}\n  repository: apps/web\nworker:\n  image: ${upstreamRef.worker}\n`);
  await execa('tar', ['-C', join(work, 'made', 'chart-src'), '-czf', tgz, 'webapp']);
  await rename(tgz, join(repoDir, 'charts', 'webapp-1.0.0.tgz'));
  const bytes = await readFile(join(repoDir, 'charts', 'webapp-1.0.0.tgz'));
  await writeFile(join(repoDir, 'index.yaml'), stringify({ ...index, entries: { ...index.entries, webapp: [{ name: 'webapp', version: '1.0.0', urls: ['charts/webapp-1.0.0.tgz'], digest: sha256(bytes) }] } }));

  const dir = join(work, 'discover');
  await mkdir(join(dir, 'rendered'), { recursive: true });
  await writeFile(join(dir, 'rendered', 'app.yaml'), `kind: CronJob\nmetadata: {name: nightly}\nspec: {jobTemplate: {spec: {template: {spec: {initContainers: [{image: ${upstreamRef.web}}], containers: [{image: ${upstreamRef.cron}}]}}}}}\n`);
  await writeFile(join(dir, 'images.txt'), `# by hand\n${upstreamRef.web}\n`);
  await writeFile(join(dir, 'values.yaml'), 'replicas: 3\n');
  const spec = await writeBundle(dir, {
    name: 'discover',
    version: '1.0.0',
    images: [{ fromManifests: './rendered/*.yaml' }, { fromList: './images.txt' }],
    charts: [{ repo: repoUrl, name: 'webapp', version: '1.0.0', images: 'auto', values: './values.yaml' }],
  });

  const env = { ...process.env, PATH: '/usr/bin:/bin' }; // no helm: found from values and templates
  const dry = await execa(AIRGAP, ['build', spec, '--dry-run', '--json', '--insecure-registry', upstream.host, '--out', dir], { env, reject: false });
  t.equal(dry.exitCode, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as { dryRun: boolean; images: Array<{ target: string; digest: string }>; discovered: Array<{ target: string; from: string[] }> };
  t.equal(plan.dryRun, true);
  t.same(plan.images.map((i) => i.target).sort(), ['apps/cron:1.0', 'apps/web:2.0', 'apps/worker:1.0']);
  t.same(plan.discovered.find((d) => d.target === 'apps/web:2.0')!.from, ['values.yaml: image (repository, tag from appVersion)', 'rendered/app.yaml: CronJob/nightly initContainers', 'images.txt:2'], 'each place an image was found');
  t.match(dry.stderr, /images found without Helm/);
  t.same((await readdir(dir)).filter((f) => f.endsWith('.bin')), [], 'a dry run writes no .bin');

  const result = await buildBundle({ specPath: spec, out: dir, insecureRegistries: [upstream.host] });
  for (const [ref, target] of [['web', 'apps/web:2.0'], ['worker', 'apps/worker:1.0'], ['cron', 'apps/cron:1.0']] as const) {
    const [repository, tag] = target.split(':') as [string, string];
    const head = await fetch(`http://${upstream.host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: made[ref]!.mediaType } });
    t.equal(result.images.find((i) => i.target === target)?.digest, head.headers.get('docker-content-digest'), `${target} carries the upstream digest`);
  }
  t.same(result.charts.map((c) => c.target), ['charts/webapp:1.0.0']);

  const discovered = await execa(AIRGAP, ['images', 'discover', join(repoDir, 'charts', 'webapp-1.0.0.tgz'), '--json'], { env, reject: false });
  t.equal(discovered.exitCode, 0, discovered.stderr);
  const listed = JSON.parse(discovered.stdout) as { method: string; images: Array<{ reference: string; target: string; source: string }> };
  t.equal(listed.method, 'values and templates');
  t.same(listed.images.map((i) => [i.reference, i.target, i.source]), [
    [upstreamRef.web, 'apps/web:2.0', `docker://${upstreamRef.web}`],
    [upstreamRef.worker, 'apps/worker:1.0', `docker://${upstreamRef.worker}`],
  ]);
});

t.test('a chart folder is packaged as helm package lays it out: .helmignore honoured, the same archive every time', async (t) => {
  const dir = join(work, 'folder');
  const chart = join(dir, 'mychart');
  await mkdir(join(chart, 'templates'), { recursive: true });
  await mkdir(join(chart, 'ci'), { recursive: true });
  await mkdir(join(chart, 'charts', 'sub', 'templates'), { recursive: true });
  await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: mychart\nversion: v0.4.0\nappVersion: 1.10\n');
  await writeFile(join(chart, 'values.yaml'), 'replicas: 1\n');
  await writeFile(join(chart, '.helmignore'), '# patterns\n*.bak\nci/\n');
  await writeFile(join(chart, 'templates', 'cm.yaml'), 'kind: ConfigMap\n');
  await writeFile(join(chart, 'templates', '.hidden'), 'editor swap\n');
  await writeFile(join(chart, 'templates', 'old.yaml.bak'), 'old\n');
  await writeFile(join(chart, 'ci', 'values-ci.yaml'), 'x: 1\n');
  await writeFile(join(chart, 'charts', 'sub', 'Chart.yaml'), 'apiVersion: v2\nname: sub\nversion: 1.0.0\n');
  await writeFile(join(chart, 'charts', 'sub', 'templates', 's.yaml'), 'kind: Secret\n');
  const spec = await writeBundle(dir, { name: 'folder', version: '1.0.0', charts: [{ source: './mychart' }] });
  const first = await buildBundle({ specPath: spec, out: join(dir, 'a.bin') });
  const second = await buildBundle({ specPath: spec, out: join(dir, 'b.bin') });
  t.same(first.charts.map((c) => [c.target, c.source]), [['charts/mychart:v0.4.0', './mychart']], "Helm's loose version, as written");
  t.equal(second.charts[0]!.digest, first.charts[0]!.digest, 'the same folder gives the same chart');
  t.match(first.warnings.join('\n'), /appVersion: a number in YAML; Helm reads it as the string "1.1"/);

  // The archive in the .bin: <name>/<path>, files only, what .helmignore leaves.
  const opened = await openPayload(first.path);
  const read = async (digest: string) => {
    const chunks: Buffer[] = [];
    for await (const c of openEntryStream(opened, `oci/blobs/sha256/${digest.slice(7)}`)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  const manifest = JSON.parse((await read(opened.toc.charts[0]!.digest)).toString()) as { layers: Array<{ digest: string }> };
  const archive = join(dir, 'mychart.tgz');
  await writeFile(archive, await read(manifest.layers[0]!.digest));
  await opened.close();
  const listing = (await execa('tar', ['-tzf', archive])).stdout.split('\n').sort();
  t.same(listing, ['mychart/.helmignore', 'mychart/Chart.yaml', 'mychart/charts/sub/Chart.yaml', 'mychart/charts/sub/templates/s.yaml', 'mychart/templates/cm.yaml', 'mychart/values.yaml']);
});
