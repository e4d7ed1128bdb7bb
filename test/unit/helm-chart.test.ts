/**
 * build/helm-chart: chart artifacts byte for byte as `helm push` (Helm v3.21.4) writes
 * them. The expected bytes below were made by hand from Helm's source: the loader
 * (pkg/chart/loader/load.go: sigs.k8s.io/yaml v1.6.0 over go-yaml v2, then
 * Metadata.Validate's sanitizeString), the config (pkg/registry/client.go Push:
 * json.Marshal of pkg/chart/metadata.go Metadata) and the manifest annotations
 * (pkg/registry/chart.go generateOCIAnnotations).
 */
import t from 'tap';
import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  formatFloat32,
  goJsonString,
  helmAnnotations,
  helmConfigJson,
  helmManifest,
  isHelmVersion,
  loadChartMetadata,
  resolvePlainScalar,
  sanitizeString,
} from '../../src/build/helm-chart.js';
import { chartArtifact } from '../../src/build/artifacts.js';
import { tempDir } from '../helpers/temp.js';

/**
 * Decodes a config blob with the exact field types of Helm's chart.Metadata
 * (helm.sh/helm/v3 v3.21.4 pkg/chart/metadata.go, Maintainer and Metadata; pkg/chart/dependency.go,
 * Dependency), as Go's json.Unmarshal would: a value of another JSON type is the error
 * Helm gives when it pulls the chart ("cannot unmarshal number into Go struct field
 * Metadata.appVersion of type string"). Unknown fields are refused here too: Helm would
 * ignore them, but `helm push` never writes them.
 */
function decodeAsHelm(json: string): void {
  const doc = JSON.parse(json) as Record<string, unknown>;
  const fail = (field: string, want: string, got: unknown): never => {
    throw new Error(`json: cannot unmarshal ${Array.isArray(got) ? 'array' : got === null ? 'null' : typeof got} into Go struct field ${field} of type ${want}`);
  };
  const str = (o: Record<string, unknown>, k: string, at: string) => (o[k] === undefined || typeof o[k] === 'string' ? undefined : fail(`${at}.${k}`, 'string', o[k]));
  const strList = (o: Record<string, unknown>, k: string, at: string) => {
    if (o[k] === undefined) return;
    if (!Array.isArray(o[k])) fail(`${at}.${k}`, '[]string', o[k]);
    for (const v of o[k] as unknown[]) if (typeof v !== 'string') fail(`${at}.${k}`, 'string', v);
  };
  const known = (o: Record<string, unknown>, keys: string[], at: string) => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) throw new Error(`${at} has a field Helm does not write: ${k}`);
  };
  known(doc, ['name', 'home', 'sources', 'version', 'description', 'keywords', 'maintainers', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'deprecated', 'annotations', 'kubeVersion', 'dependencies', 'type'], 'Metadata');
  for (const k of ['name', 'home', 'version', 'description', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'kubeVersion', 'type']) str(doc, k, 'Metadata');
  strList(doc, 'sources', 'Metadata');
  strList(doc, 'keywords', 'Metadata');
  if (doc.deprecated !== undefined && typeof doc.deprecated !== 'boolean') fail('Metadata.deprecated', 'bool', doc.deprecated);
  if (doc.annotations !== undefined) {
    if (typeof doc.annotations !== 'object' || doc.annotations === null || Array.isArray(doc.annotations)) fail('Metadata.annotations', 'map[string]string', doc.annotations);
    for (const v of Object.values(doc.annotations as object)) if (typeof v !== 'string') fail('Metadata.annotations', 'string', v);
  }
  for (const m of (doc.maintainers as Array<Record<string, unknown>> | undefined) ?? []) {
    known(m, ['name', 'email', 'url'], 'Maintainer');
    for (const k of ['name', 'email', 'url']) str(m, k, 'Maintainer');
  }
  for (const d of (doc.dependencies as Array<Record<string, unknown>> | undefined) ?? []) {
    known(d, ['name', 'version', 'repository', 'condition', 'tags', 'enabled', 'import-values', 'alias'], 'Dependency');
    for (const k of ['name', 'version', 'repository', 'condition', 'alias']) str(d, k, 'Dependency');
    strList(d, 'tags', 'Dependency');
    if (d.enabled !== undefined && typeof d.enabled !== 'boolean') fail('Dependency.enabled', 'bool', d.enabled);
    for (const k of ['import-values']) if (d[k] !== undefined && !Array.isArray(d[k])) fail(`Dependency.${k}`, '[]interface {}', d[k]);
  }
}

/** A Chart.yaml with what public charts have and Helm reads its own way. */
const CLEARML = `apiVersion: v2
name: clearml
version: v0.4.0
appVersion: 1.16
description: |
  Tools & <things>
  for MLOps
home: https://clear.ml
sources:
  - https://github.com/allegroai/clearml-helm-charts
keywords: [ml, 2024]
maintainers:
  - name: Jane
    email: jane@example.com
  - name: Bob
annotations:
  x: 3
  artifacthub.io/prerelease: false
  org.opencontainers.image.title: ignored
deprecated: no
kubeVersion: ">=1.21.0-0"
type: application
dependencies:
  - name: redis
    version: 17.x.x
    repository: https://charts.bitnami.com/bitnami
    condition: redis.enabled
    import-values:
      - child: port
        parent: redisPort
    enabled: yes
unknownField: 1
`;

/** What `helm push` writes as the config of CLEARML, worked out from Helm's source. */
const CLEARML_CONFIG =
  '{"name":"clearml","home":"https://clear.ml","sources":["https://github.com/allegroai/clearml-helm-charts"],"version":"v0.4.0",' +
  '"description":"Tools \\u0026 \\u003cthings\\u003e for MLOps ","keywords":["ml","2024"],' +
  '"maintainers":[{"name":"Jane","email":"jane@example.com"},{"name":"Bob"}],"apiVersion":"v2","appVersion":"1.16",' +
  '"annotations":{"artifacthub.io/prerelease":"false","org.opencontainers.image.title":"ignored","x":"3"},"kubeVersion":"\\u003e=1.21.0-0",' +
  '"dependencies":[{"name":"redis","version":"17.x.x","repository":"https://charts.bitnami.com/bitnami","condition":"redis.enabled","enabled":true,"import-values":[{"child":"port","parent":"redisPort"}]}],' +
  '"type":"application"}';

t.test("the config is Helm's Metadata as json.Marshal writes it, byte for byte", async (t) => {
  const { metadata, warnings } = loadChartMetadata(CLEARML, undefined, 'clearml-v0.4.0.tgz');
  const config = helmConfigJson(metadata).toString('utf8');
  t.equal(config, CLEARML_CONFIG);
  t.doesNotThrow(() => decodeAsHelm(config), "it decodes into Helm's Metadata types");
  t.throws(() => decodeAsHelm('{"name":"x","appVersion":1.16}'), { message: /cannot unmarshal number into Go struct field Metadata.appVersion of type string/ }, 'what Chart.yaml as plain JSON gave: Helm cannot pull it');
  t.throws(() => decodeAsHelm('{"name":"x","annotations":{"x":3}}'), { message: /Metadata.annotations of type string/ });
  t.match(warnings.join('\n'), /appVersion: a number in YAML; Helm reads it as the string "1.16"/, 'the admin is told about the unquoted appVersion');
});

t.test("the manifest has Helm's annotations, no mediaType field, keys in Go's order", async (t) => {
  const { metadata } = loadChartMetadata(CLEARML, undefined, 'x.tgz');
  const config = { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 10 };
  const layer = { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: `sha256:${'1'.repeat(64)}`, size: 20 };
  const manifest = helmManifest(config, [layer], helmAnnotations(metadata, '2024-10-05T12:03:07Z')).toString('utf8');
  t.equal(
    manifest,
    '{"schemaVersion":2,' +
      `"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:${'c'.repeat(64)}","size":10},` +
      `"layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"sha256:${'1'.repeat(64)}","size":20}],` +
      '"annotations":{"artifacthub.io/prerelease":"false",' +
      '"org.opencontainers.image.authors":"Jane (jane@example.com), Bob",' +
      '"org.opencontainers.image.created":"2024-10-05T12:03:07Z",' +
      '"org.opencontainers.image.description":"Tools \\u0026 \\u003cthings\\u003e for MLOps ",' +
      '"org.opencontainers.image.source":"https://github.com/allegroai/clearml-helm-charts",' +
      '"org.opencontainers.image.title":"clearml",' +
      '"org.opencontainers.image.url":"https://clear.ml",' +
      '"org.opencontainers.image.version":"v0.4.0",' +
      '"x":"3"}}',
  );
  const plain = loadChartMetadata('apiVersion: v2\nname: a\nversion: 1.0.0+build.7\n', undefined, 'a.tgz').metadata;
  t.same(helmAnnotations(plain, '2024-01-01T00:00:00Z'), {
    'org.opencontainers.image.title': 'a',
    'org.opencontainers.image.version': '1.0.0+build.7',
    'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
  }, "blank fields are left out; the version keeps its '+'");
  const override = loadChartMetadata('apiVersion: v2\nname: a\nversion: 1.0.0\ndescription: d\nannotations:\n  org.opencontainers.image.description: mine\n', undefined, 'a.tgz').metadata;
  t.equal(helmAnnotations(override, 'c')['org.opencontainers.image.description'], 'mine', "the chart's annotations win, except title and version");
});

t.test('YAML as go-yaml v2 resolves it, numbers as sigs.k8s.io/yaml writes them into strings', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['yes', { kind: 'bool', value: true }],
    ['Off', { kind: 'bool', value: false }],
    ['yES', { kind: 'str', value: 'yES' }],
    ['010', { kind: 'int', value: 8n }],
    ['0x1F', { kind: 'int', value: 31n }],
    ['0o17', { kind: 'int', value: 15n }],
    ['0b101', { kind: 'int', value: 5n }],
    ['1_000', { kind: 'int', value: 1000n }],
    ['08', { kind: 'float', value: 8 }],
    ['.5', { kind: 'float', value: 0.5 }],
    ['1e3', { kind: 'float', value: 1000 }],
    ['1.2.3', { kind: 'str', value: '1.2.3' }],
    ['2020-01-02', { kind: 'str', value: '2020-01-02' }],
    ['1:20', { kind: 'str', value: '1:20' }],
    ['~', { kind: 'null' }],
  ];
  for (const [text, want] of cases) t.same(resolvePlainScalar(text), want, text);
  const floats: Array<[number, string]> = [
    [1.1, '1.1'],
    [1.16, '1.16'],
    [1, '1'],
    [1000, '1000'],
    [100000, '100000'],
    [1e6, '1e+06'],
    [1234567, '1.234567e+06'],
    [0.00001, '1e-05'],
    [0.0001, '0.0001'],
    [3.14159265358979, '3.1415927'],
    [-2.5, '-2.5'],
    [1e21, '1e+21'],
    [Infinity, '+Inf'],
  ];
  for (const [v, want] of floats) t.equal(formatFloat32(v), want, `FormatFloat(${v}, 'g', -1, 32)`);

  const { metadata, warnings } = loadChartMetadata('apiVersion: v2\nname: a\nversion: 1.0.0\nappVersion: 1.10\nkubeVersion: 010\ndescription: on\n', undefined, 'a.tgz');
  t.equal(metadata.appVersion, '1.1', 'appVersion: 1.10 is "1.1" to Helm');
  t.equal(metadata.kubeVersion, '8', '010 is octal');
  t.equal(metadata.description, 'true', 'on is a boolean');
  t.match(warnings.join('\n'), /appVersion: a number in YAML; Helm reads it as the string "1.1"/);
  t.equal(loadChartMetadata('apiVersion: v2\nname: a\nversion: "1.0"\nappVersion: "1.10"\n', undefined, 'a.tgz').metadata.appVersion, '1.10', 'a quoted value stays as written');
});

t.test('versions as Helm accepts them (Masterminds/semver NewVersion)', async (t) => {
  for (const v of ['1.2.3', 'v0.4.0', '1.2', '1', '01.002.3', '1.0.0-rc.1+build.5', '1.0.0+001']) t.ok(isHelmVersion(v), v);
  for (const v of ['V1.2.3', '1.2.3.4', '1.0.0-', '1.0.0-01', 'latest', '1.0.0+a..b', '']) t.notOk(isHelmVersion(v), v);
  const { metadata } = loadChartMetadata('apiVersion: v2\nname: a\nversion: v0.4.0\n', undefined, 'a.tgz');
  t.equal(metadata.version, 'v0.4.0', 'kept as written');
});

t.test('what Helm refuses is refused with its reason', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['apiVersion: v2\nname: a\nversion: 1.0.0\ndescription: {x: 1}\n', /description must be a string, not a mapping/],
    ['apiVersion: v2\nname: a\nversion: 1.0.0\ndeprecated: "true"\n', /deprecated must be true or false, not the string 'true'/],
    ['apiVersion: v2\nname: a/b\nversion: 1.0.0\n', /name 'a\/b' is invalid/],
    ['apiVersion: v2\nname: a\nversion: latest\n', /version 'latest' is invalid/],
    ['apiVersion: v2\nversion: 1.0.0\n', /name is required/],
    ['apiVersion: v2\nname: a\nversion: 1.0.0\ntype: app\n', /type must be application or library/],
    ['apiVersion: v2\nname: a\nversion: 1.0.0\nmaintainers: [~]\n', /maintainers must not contain empty or null nodes/],
    ['apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies: [{name: x, repository: r}, {name: y, alias: x, repository: r}]\n', /more than one dependency with name or alias 'x'/],
    ['apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies: [{name: x, alias: "a b", repository: r}]\n', /disallowed characters in the alias/],
    ['name: [a\n', /not valid YAML/],
    [`a: &a [${'x,'.repeat(9)}x]\n${['b', 'c', 'd', 'e', 'f'].map((k, i) => `${k}: &${k} [${`*${'abcde'[i]},`.repeat(9)}*${'abcde'[i]}]`).join('\n')}\nname: z\n`, /expands to more than 100000 values/],
  ];
  for (const [yaml, message] of bad) t.throws(() => loadChartMetadata(yaml, undefined, 'bad.tgz'), { code: 'AG_CHART', message }, String(message));
});

t.test('the loader as Helm: apiVersion v1 when unset, requirements.yaml over Chart.yaml, keys case-insensitive, strings sanitized', async (t) => {
  const { metadata } = loadChartMetadata(
    'Name: old\nname: a\nversion: 1.0.0\ndescription: "tab\\there\\u200b, bell\\a"\ndependencies: [{name: gone, repository: r}]\n',
    'dependencies:\n  - name: redis\n    repository: ""\n    tags: [cache, 1]\n',
    'a.tgz',
  );
  t.equal(metadata.apiVersion, 'v1');
  t.equal(metadata.name, 'a', 'Name and name both reach the name field; the last wins');
  t.equal(metadata.description, 'tab here, bell', 'a tab becomes a space, a zero-width space and a bell go');
  t.same(metadata.dependencies, [{ name: 'redis', repository: '', tags: ['cache', '1'] }], "requirements.yaml's dependencies replace Chart.yaml's");
  t.equal(helmConfigJson(metadata).toString(), '{"name":"a","version":"1.0.0","description":"tab here, bell","apiVersion":"v1","dependencies":[{"name":"redis","repository":"","tags":["cache","1"]}]}', "a dependency's name and repository are written even when empty");
  t.equal(sanitizeString('a\u00a0b\u3000c\u0007'), 'a b c');
  const v4 = loadChartMetadata('apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies: [{name: x, repository: r, export-values: [y]}]\n', undefined, 'a.tgz').metadata;
  t.equal(helmConfigJson(v4).toString(), '{"name":"a","version":"1.0.0","apiVersion":"v2","dependencies":[{"name":"x","repository":"r"}]}', "export-values is Helm 4's: Helm v3 drops it");
});

t.test("an archive Helm would refuse (a file over 5 MiB) is refused before it is unpacked further", async (t) => {
  const dir = await tempDir(t, 'airgap-helm-big-');
  await mkdir(join(dir, 'src', 'big'), { recursive: true });
  await writeFile(join(dir, 'src', 'big', 'Chart.yaml'), 'apiVersion: v2\nname: big\nversion: 1.0.0\n');
  await writeFile(join(dir, 'src', 'big', 'blob.bin'), Buffer.alloc(6 * 1024 * 1024));
  const tgz = join(dir, 'big-1.0.0.tgz');
  await execa('tar', ['-C', join(dir, 'src'), '-czf', tgz, 'big']);
  await t.rejects(chartArtifact(tgz), { code: 'AG_CHART', message: /a file larger than 5 MiB .*Helm refuses such a chart/ });
});

t.test("strings as Go's json.Marshal escapes them", async (t) => {
  t.equal(goJsonString('<a & b>'), '"\\u003ca \\u0026 b\\u003e"');
  t.equal(goJsonString('line\u2028sep\u2029'), '"line\\u2028sep\\u2029"');
  t.equal(goJsonString('\u0001\b\f\n\r\t"\\/é'), '"\\u0001\\b\\f\\n\\r\\t\\"\\\\/é"');
});

t.test('a chart archive becomes the artifact helm push makes: created from its mtime, tag with _ for +', async (t) => {
  const dir = await tempDir(t, 'airgap-helm-chart-');
  const src = join(dir, 'src', 'clearml');
  await mkdir(join(src, 'templates'), { recursive: true });
  await writeFile(join(src, 'Chart.yaml'), CLEARML.replace('version: v0.4.0', 'version: 7.14.7+up1'));
  await writeFile(join(src, 'templates', 'cm.yaml'), 'kind: ConfigMap\n');
  const tgz = join(dir, 'clearml-7.14.7+up1.tgz');
  await execa('tar', ['-C', join(dir, 'src'), '-czf', tgz, 'clearml']);
  await utimes(tgz, new Date('2024-10-05T12:03:07.750Z'), new Date('2024-10-05T12:03:07.750Z'));
  const artifact = await chartArtifact(tgz);
  t.equal(artifact.target, 'charts/clearml:7.14.7_up1', "Helm's tag: + becomes _");
  t.equal(artifact.version, '7.14.7+up1');
  t.equal(artifact.config.bytes.toString(), CLEARML_CONFIG.replace('"version":"v0.4.0"', '"version":"7.14.7+up1"'));
  const manifest = JSON.parse(artifact.manifest.bytes.toString()) as { mediaType?: string; annotations: Record<string, string> };
  t.equal(manifest.mediaType, undefined, 'no mediaType field, as helm push writes it');
  t.equal(manifest.annotations['org.opencontainers.image.created'], '2024-10-05T12:03:07Z', "the archive's mtime, whole seconds");
  t.equal(manifest.annotations['org.opencontainers.image.version'], '7.14.7+up1');
  t.ok(artifact.warnings.length > 0);
  await rm(join(dir, 'src'), { recursive: true });
});
