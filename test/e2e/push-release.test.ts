/**
 * The appliance as a source: `airgap push --release VERSION` on the box forwards an
 * installed release from its own registries (TLS, htpasswd, read with what `airgap setup`
 * prints) to a site's registry on loopback. skopeo reads every reference back at the
 * digest the .bin was built with.
 */
import t from 'tap';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { makeChart, makePack, writeBundle, writeSyntheticLayout } from '../helpers/fixtures.js';
import { startDaemon } from '../helpers/appliance.js';
import { startRegistry } from '../helpers/registry.js';
import { runAirgap } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

interface Report {
  status: string;
  file: string;
  version: string;
  images: number;
  charts: number;
  packs: number;
  blobsPushed: number;
  files: { count: number; pushed: boolean };
  references: Array<{ kind: string; source: string; reference: string; digest: string; outcome: string }>;
}

const work = await tempDir(t, 'airgap-push-release-test-');
const keys = await generateSigningKeys(join(work, 'keys'));
await writeSyntheticLayout(join(work, 'images'), [
  { ref: 'app', layers: [randomBytes(120_000), randomBytes(80_000)] },
  { ref: 'multiarch', layers: [randomBytes(60_000)], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }] },
]);
await makeChart(join(work, 'charts'), 'hello', '0.1.0');
await makePack(join(work, 'packs'), 'cilium', '1.14.2');
const spec = await writeBundle(work, {
  name: 'forward',
  version: '2.0.0',
  images: [
    { source: 'oci:./images:app', target: 'apps/app:2.0' },
    { source: 'oci:./images:multiarch', target: 'apps/multiarch:2.0' },
  ],
  charts: [{ source: './charts/hello-0.1.0.tgz' }],
  packs: [{ source: './packs/cilium' }],
});
const built = await buildBundle({ specPath: spec, out: work, privateKeyPath: keys.privateKeyPath });

const daemon = await startDaemon(t);
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const setup = await daemon.cli(['setup', '127.0.0.1', '--json']);
if (setup.exitCode !== 0) throw new Error(`setup failed: ${setup.stderr}`);
const imported = await daemon.cli(['import', built.path, '--json']);
if (imported.exitCode !== 0) throw new Error(`import failed: ${imported.stderr}`);

async function digestAt(reference: string): Promise<string> {
  const raw = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reference}`]);
  return `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`;
}

t.test('an installed release goes from the box to a site registry, digests unchanged', async (t) => {
  const site = await startRegistry(t);
  const r = await daemon.cli(['push', '--release', '2.0.0', '--to', `${site.host}/mirror`, '--insecure-registry', site.host, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.match(report, { status: 'pushed', file: 'release 2.0.0', version: '2.0.0', images: 2, charts: 1, packs: 1 });
  t.ok(report.blobsPushed > 0);
  const expected = new Map([...built.images.map((i) => [i.target, i.digest] as const), ...built.charts.map((c) => [c.target, c.digest] as const), ...built.packs.map((p) => [p.target, p.digest] as const)]);
  t.equal(report.references.length, 4);
  for (const ref of report.references) {
    t.equal(ref.digest, expected.get(ref.source), `${ref.source}: the digest the .bin was built with`);
    t.equal(await digestAt(ref.reference), ref.digest, `skopeo reads ${ref.reference}`);
  }
  t.ok(report.references.some((x) => x.reference === `${site.host}/mirror/charts/hello:0.1.0`), 'charts under charts/');
  t.ok(report.references.some((x) => x.reference === `${site.host}/mirror/packs/cilium:1.14.2`), 'packs under packs/');

  const again = await daemon.cli(['push', '--release', '2.0.0', '--to', `${site.host}/mirror`, '--insecure-registry', site.host, '--json']);
  t.equal(again.exitCode, 0, again.stderr);
  t.match(JSON.parse(again.stdout), { status: 'unchanged', blobsPushed: 0 }, 'a second run sends nothing');
});

t.test('a release that is not there, or --release where there is no appliance, is a clear usage error', async (t) => {
  const missing = await daemon.cli(['push', '--release', '9.9.9', '--to', '127.0.0.1:1/x', '--insecure-registry', '127.0.0.1:1']);
  t.equal(missing.exitCode, 2);
  t.match(missing.stderr, /there is no release 9\.9\.9 on this appliance/);
  t.match(missing.stderr, /its releases: 2\.0\.0/);
  const both = await runAirgap(['push', built.path, '--release', '2.0.0', '--to', '127.0.0.1:1/x']);
  t.equal(both.exitCode, 2);
  t.match(both.stderr, /FILE\.bin or --release VERSION, not both/);
  const portable = await execa('node', [join(import.meta.dirname, '..', '..', 'dist', 'portable', 'airgap.mjs'), 'push', '--release', '2.0.0', '--to', '127.0.0.1:1/x'], { reject: false });
  t.equal(portable.exitCode, 2);
  t.match(portable.stderr, /--release works on the appliance/);
});
