/**
 * import/chart-repo: the classic Helm repository's index.yaml from the recorded releases:
 * hostile names and values stay data (a chart named `constructor`, `on`), every key and
 * string quoted for Helm's YAML 1.1 reading, Helm v3's fields only, `created` RFC 3339,
 * and what no release names removed, metadata before archives.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { openDatabase } from '../../src/appliance/store/db.js';
import { createImport } from '../../src/appliance/store/imports.js';
import { insertRelease } from '../../src/appliance/store/releases.js';
import { chartInstalled, writeChartIndex } from '../../src/appliance/import/chart-repo.js';
import { tempDir } from '../helpers/temp.js';

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

t.test('index.yaml: hostile names stay data, YAML 1.1-safe, Helm v3 fields only; what no release names goes', async (t) => {
  const work = await tempDir(t, 'airgap-chart-repo-');
  const db = openDatabase(join(work, 'state.db'));
  t.teardown(() => db.close());
  const dir = join(work, 'charts');
  await mkdir(join(dir, '.meta'), { recursive: true });

  /** A chart on disk as installCharts leaves it: the archive and its metadata. */
  const chart = async (name: string, version: string, extra: Record<string, unknown> = {}, created = '2024-10-05T12:03:07Z') => {
    const archive = `${name}-${version} archive`;
    const manifestDigest = `sha256:${sha(`${name} ${version} manifest`)}`;
    const file = `${name}-${version}.tgz`;
    await writeFile(join(dir, file), archive);
    await writeFile(join(dir, '.meta', `${manifestDigest.slice(7)}.json`), JSON.stringify({ manifestDigest, file, digest: sha(archive), created, metadata: { name, version, apiVersion: 'v2', ...extra } }));
    return { kind: 'chart' as const, target: `charts/${name.toLowerCase()}:${version}`, digest: manifestDigest, size: 1, mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: null };
  };
  const release = (version: string) => ({ version, name: 'demo', created: '2026-01-01T00:00:00Z', payloadSha256: 'a'.repeat(64), tocSha256: 'b'.repeat(64), keyId: null, importId: createImport(db, { file: `/x/${version}.bin`, source: 'cli', actor: 'test', options: {} }).id, importedAt: '2026-01-01T00:00:00Z' });

  const artifacts = [
    await chart('constructor', '1.0.0'),
    await chart('on', '1.10.0', { appVersion: 'yes', dependencies: [{ name: 'redis', repository: 'r', 'export-values': ['x'] }], unknownField: 1 }),
    await chart('on', '1.9.0', {}, 'not a time'),
  ];
  const gone = await chart('gone', '0.1.0');
  insertRelease(db, release('1.0.0'), artifacts, true);
  t.equal(await writeChartIndex(db, dir, new Date('2026-12-02T00:00:00Z')), 3);
  t.ok(await chartInstalled(dir, artifacts[0]!.digest));
  t.notOk(await chartInstalled(dir, gone.digest), 'a chart no release names is gone');

  const text = await readFile(join(dir, 'index.yaml'), 'utf8');
  t.match(text, /^\s+"on":$/m, 'a key YAML 1.1 reads as a boolean is quoted');
  t.match(text, /"appVersion": "yes"/, 'and so is every string');
  t.notMatch(text, /export-values|unknownField/, "only Helm v3's fields: Helm reads the index strictly");
  const index = parseYaml(text, { version: '1.1' }) as { apiVersion: string; entries: Record<string, Array<{ version: string; urls: string[]; digest: string; created: string }>> };
  t.same(Object.keys(index.entries), ['constructor', 'on'], 'a chart named constructor is a chart like any other');
  t.same(index.entries.on!.map((e) => e.version), ['1.10.0', '1.9.0'], 'newest version first');
  t.equal(index.entries.on![1]!.created, '2026-12-02T00:00:00.000Z', 'a created that is no time becomes the time of writing');
  const ctor = new Map(Object.entries(index.entries)).get('constructor')![0]!;
  t.same(ctor.urls, ['constructor-1.0.0.tgz']);
  t.equal(ctor.digest, sha('constructor-1.0.0 archive'));
  t.same((await readdir(dir)).sort(), ['.meta', 'constructor-1.0.0.tgz', 'index.yaml', 'on-1.10.0.tgz', 'on-1.9.0.tgz']);
  t.equal((await readdir(join(dir, '.meta'))).length, 3);

  // An archive lost after its metadata was written: the chart is not installed (a re-import repairs it).
  await writeFile(join(dir, 'constructor-1.0.0.tgz'), 'changed');
  t.notOk(await chartInstalled(dir, artifacts[0]!.digest), 'an archive that does not match is not installed');
});
