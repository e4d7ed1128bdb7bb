/**
 * build/discover: the images a chart or rendered manifests refer to, found without Helm
 * (values, templates, the artifacthub.io/images annotation, subcharts), from pod templates
 * of every workload kind, and from lists; each with where it was found.
 */
import t from 'tap';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { discoverChartImages, imageItemFor, imagesInChart, imagesInList, imagesInManifests, imagesInManifestText, isImageReference } from '../../src/build/discover.js';
import { tempDir } from '../helpers/temp.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

const RENDERED = `# rendered by hand
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: registry.example.com/app/migrate:2.0
      containers:
        - name: web
          image: registry.example.com/app/web:2.0
        - name: proxy
          image: nginx:1.25
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: backup
              image: quay.io/org/backup@${DIGEST}
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: main, image: "nginx:1.25"}]
  ephemeralContainers: [{name: shell, image: busybox:1.36}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec: {template: {spec: {containers: [{name: pg, image: postgres:16}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-workload}
data: {image: "ignored:1.0"}
`;

t.test('every pod template of rendered manifests: init, ephemeral, CronJob, lists', async (t) => {
  const found = [...imagesInManifestText(RENDERED, 'rendered.yaml').values()];
  t.same(found.map((f) => f.reference).sort(), ['busybox:1.36', 'nginx:1.25', 'postgres:16', `quay.io/org/backup@${DIGEST}`, 'registry.example.com/app/migrate:2.0', 'registry.example.com/app/web:2.0']);
  t.same(found.find((f) => f.reference === 'nginx:1.25')!.from, ['rendered.yaml: Deployment/web containers', 'rendered.yaml: Pod/debug containers'], 'each place it was found');
  t.same(found.find((f) => f.reference === 'registry.example.com/app/migrate:2.0')!.from, ['rendered.yaml: Deployment/web initContainers']);
  t.throws(() => imagesInManifestText('a: [b\n', 'bad.yaml'), { code: 'AG_SPEC', message: /bad.yaml is not valid YAML/ });

  const dir = await tempDir(t, 'airgap-discover-');
  await mkdir(join(dir, 'rendered', 'nested'), { recursive: true });
  await writeFile(join(dir, 'rendered', 'a.yaml'), RENDERED);
  await writeFile(join(dir, 'rendered', 'nested', 'b.yaml'), 'kind: Pod\nmetadata: {name: x}\nspec: {containers: [{image: alpine:3.20}]}\n');
  await writeFile(join(dir, 'rendered', 'notes.txt'), 'image: no:1\n');
  t.equal((await imagesInManifests('./rendered/*.yaml', dir)).length, 6, '* stays in one folder');
  t.equal((await imagesInManifests('rendered/**/*.yaml', dir)).length, 7, '** goes into folders');
  await t.rejects(imagesInManifests('./none/*.yaml', dir), { code: 'AG_SPEC', message: /no file matches/ });
});

t.test('a list: one reference a line, comments and blank lines skipped, a bad line named', async (t) => {
  const dir = await tempDir(t, 'airgap-discover-list-');
  await writeFile(join(dir, 'images.txt'), `# platform images\nquay.io/org/app:1.2   # the app\n\nnginx:1.25\nnginx:1.25\nregistry:5000/a/b@${DIGEST}\n`);
  t.same((await imagesInList(join(dir, 'images.txt'))).map((f) => [f.reference, f.from]), [
    ['quay.io/org/app:1.2', ['images.txt:2']],
    ['nginx:1.25', ['images.txt:4', 'images.txt:5']],
    [`registry:5000/a/b@${DIGEST}`, ['images.txt:6']],
  ]);
  await writeFile(join(dir, 'hashes.txt'), `${' #'.repeat(20_000)}\u2028x\nalpine:3.20\t# trailing\n`);
  t.same((await imagesInList(join(dir, 'hashes.txt'))).map((f) => f.reference), ['alpine:3.20'], 'a line of comments is a comment, however long');
  await writeFile(join(dir, 'bad.txt'), 'nginx:1.25\nNot A Reference\n');
  await t.rejects(imagesInList(join(dir, 'bad.txt')), { code: 'AG_SPEC', message: /bad.txt:2: 'Not A Reference' is not an image reference/ });
});

t.test('references and their default targets: the reference without its registry host', async (t) => {
  for (const ok of ['nginx:1.25', 'quay.io/org/app:1.2', `a/b@${DIGEST}`, `host:5000/a/b:1@${DIGEST}`, 'localhost:5000/x:y']) t.ok(isImageReference(ok), ok);
  for (const bad of ['nginx', 'Nginx:1', 'host:5000', '{{ .Values.image }}', 'a b:1', 'x:']) t.notOk(isImageReference(bad), bad);
  const item = (reference: string) => imageItemFor({ reference, from: ['test'] });
  t.same(item('nginx:1.25'), { source: 'docker://docker.io/library/nginx:1.25', target: 'library/nginx:1.25' });
  t.same(item('quay.io/org/app:1.2'), { source: 'docker://quay.io/org/app:1.2', target: 'org/app:1.2' });
  t.same(item(`quay.io/org/app:1.2@${DIGEST}`), { source: `docker://quay.io/org/app@${DIGEST}`, target: 'org/app:1.2' }, 'pulled by digest, tagged as written');
  t.same(item(`registry:5000/a/b@${DIGEST}`), { source: `docker://registry:5000/a/b@${DIGEST}`, target: `a/b:sha256-${'ab'.repeat(32)}` });
  t.same(item('alpine'), { source: 'docker://docker.io/library/alpine:latest', target: 'library/alpine:latest' });
  t.throws(() => item('{{ .Values.x }}'), { code: 'AG_SPEC', message: /found in test/ });
});

/** A chart folder: values with image maps and strings, templates, an annotation, two subcharts. */
async function writeChart(dir: string): Promise<string> {
  const chart = join(dir, 'clearml');
  await mkdir(join(chart, 'templates'), { recursive: true });
  await mkdir(join(chart, 'charts', 'redis', 'templates'), { recursive: true });
  await writeFile(join(chart, 'Chart.yaml'), `apiVersion: v2\nname: clearml\nversion: 7.14.7\nappVersion: "1.16.2"\nannotations:\n  artifacthub.io/images: |\n    - name: agent\n      image: allegroai/clearml-agent:1.9.0\n`);
  await writeFile(
    join(chart, 'values.yaml'),
    `global:\n  imageRegistry: ""\napiserver:\n  image:\n    registry: docker.io\n    repository: allegroai/clearml\n    tag: "1.16.2-502"\nwebserver:\n  image:\n    repository: allegroai/clearml-web\nelastic:\n  image:\n    repository: elastic/elasticsearch\n    digest: ${DIGEST}\nsidecarImage: busybox:1.36\ngreeting: "hello:world"\nreplicas: 2\nredis:\n  image:\n    tag: "7.2"\n`,
  );
  await writeFile(join(chart, 'templates', 'job.yaml'), 'spec:\n  containers:\n    - image: quay.io/org/tool:3.1\n    - image: "{{ .Values.apiserver.image.repository }}:{{ .Values.apiserver.image.tag }}"\n');
  await writeFile(join(chart, 'charts', 'redis', 'Chart.yaml'), 'apiVersion: v2\nname: redis\nversion: 17.0.0\nappVersion: "7.0"\n');
  await writeFile(join(chart, 'charts', 'redis', 'values.yaml'), 'image:\n  registry: docker.io\n  repository: bitnami/redis\n  tag: "7.0"\n');
  return chart;
}

t.test('a chart without Helm: values maps and strings, templates, the annotation, subcharts with the parent values', async (t) => {
  const dir = await tempDir(t, 'airgap-discover-chart-');
  const chart = await writeChart(dir);
  const byRef = async (c: string | Buffer, override?: unknown) => Object.fromEntries((await imagesInChart(c, override)).map((f) => [f.reference, f.from]));
  const found = await byRef(chart);
  t.same(Object.keys(found).sort(), [
    'allegroai/clearml-agent:1.9.0',
    'allegroai/clearml-web:1.16.2',
    'busybox:1.36',
    'docker.io/allegroai/clearml:1.16.2-502',
    'docker.io/bitnami/redis:7.2',
    `elastic/elasticsearch@${DIGEST}`,
    'quay.io/org/tool:3.1',
  ]);
  t.same(found['allegroai/clearml-web:1.16.2'], ['values.yaml: webserver.image (repository, tag from appVersion)'], 'no tag: the appVersion, and it says so');
  t.same(found['docker.io/bitnami/redis:7.2'], ['charts/redis/values.yaml: image (repository, tag)'], "the parent's values for the subchart win");
  t.same(found['quay.io/org/tool:3.1'], ['templates/job.yaml'], 'a literal reference; the templated one is not guessed');
  t.same(found['allegroai/clearml-agent:1.9.0'], ['Chart.yaml: artifacthub.io/images']);

  // The same chart packaged, with a values file over values.yaml.
  const tgz = join(dir, 'clearml-7.14.7.tgz');
  await execa('tar', ['-C', dir, '-czf', tgz, 'clearml']);
  const overridden = await byRef(tgz, { global: { imageRegistry: 'mirror.example.com' }, apiserver: { image: { tag: '1.17.0' } } });
  t.ok(overridden['docker.io/allegroai/clearml:1.17.0'], 'a values file over values.yaml');
  t.ok(overridden['mirror.example.com/allegroai/clearml-web:1.16.2'], 'global.imageRegistry for a map without its own registry');
  t.ok(overridden['docker.io/bitnami/redis:7.2']);
});

t.test('with helm on PATH the chart is rendered and its pod templates read', async (t) => {
  // A stand-in for helm, which Debian does not package: it records its arguments and
  // prints what `helm template` prints, a stream of rendered objects.
  const dir = await tempDir(t, 'airgap-discover-helm-');
  const chart = await writeChart(dir);
  await mkdir(join(dir, 'bin'));
  await writeFile(join(dir, 'bin', 'helm'), `#!/bin/sh\nprintf '%s\\n' "$@" > "${join(dir, 'args')}"\ncat <<'EOF'\n---\n# Source: clearml/templates/api.yaml\nkind: Deployment\nmetadata: {name: api}\nspec: {template: {spec: {containers: [{image: "docker.io/allegroai/clearml:1.16.2-502"}]}}}\nEOF\n`);
  await chmod(join(dir, 'bin', 'helm'), 0o755);
  await writeFile(join(dir, 'values.yaml'), 'replicas: 1\n');
  const result = await discoverChartImages(chart, join(dir, 'values.yaml'), { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` });
  t.equal(result.method, 'helm template');
  t.same(result.images.map((f) => f.reference), ['docker.io/allegroai/clearml:1.16.2-502']);
  t.same((await readFile(join(dir, 'args'), 'utf8')).trim().split('\n'), ['template', 'airgap-discover', chart, '--values', join(dir, 'values.yaml')]);
  const without = await discoverChartImages(chart, undefined, { ...process.env, PATH: '/nonexistent' });
  t.equal(without.method, 'values and templates', 'no helm: found from values and templates');
});
