/**
 * `npm run bench`: import speed and footprint against what an admin would otherwise run.
 *
 * Makes its own content (N images of L random, incompressible layers of M MB; a second
 * release changes one layer per image), builds two signed .bin files, starts fresh
 * appliances on loopback, and measures in one run: import of the first release, of the
 * upgrade, a re-import, the delete of the first release with its garbage collection; the
 * same images copied one after the other with `skopeo copy` into a fresh appliance
 * registry (same TLS and htpasswd); `airgap push` of the same .bin files into such a
 * registry; and two limits (bench/limits.ts): the HTTP ingest of such a registry by a
 * minimal 4-lane client, and a 4-lane fsynced copy of the same blobs on the same disk.
 * Prints a table and writes it as JSON under bench/results/.
 *
 * Then the many-files suite (bench/many-files.ts): a signed bundle of 100,000 small files,
 * and a hostile unsigned one of 1,000,000 empty entries.
 *
 * The many-images suite runs the same comparison on many small images (N images of 3 layers
 * of 1 MB), where the cost per image and per request, not the bytes, sets the pace.
 *
 * Options: --suite all|images|many-images|files (all) --images N (4) --layers L (5)
 * --layer-mb M (24) --many-images N (300) --files N (100000) --hostile-entries N (1000000)
 * --import-only (no skopeo, push or limit rows: a 20 GB run fits the disk) --profile DIR (the
 * daemon writes a V8 CPU profile there) --keep (leave bench/work).
 */
import { parseArgs } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { buildBundle } from '../src/build/builder.js';
import { generateSigningKeys } from '../src/format/keys.js';
import { encodeFileHeader, endOfArchive, paddingFor } from '../src/format/tar.js';
import { AIRGAP, MB, root, startAppliance, daemonPeakRss, timed, importBin, work as benchWork } from './common.js';
import { manyFilesBench } from './many-files.js';
import { diskCopyLimit, httpIngestLimit } from './limits.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '4' },
    layers: { type: 'string', default: '5' },
    'layer-mb': { type: 'string', default: '24' },
    'many-images': { type: 'string', default: '300' },
    files: { type: 'string', default: '100000' },
    'hostile-entries': { type: 'string', default: '1000000' },
    suite: { type: 'string', default: 'all' },
    keep: { type: 'boolean', default: false },
    'import-only': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
/** What a suite of images makes: `images` images of `layers` random layers of `layerBytes`. */
interface ImagesShape {
  images: number;
  layers: number;
  layerBytes: number;
  /** Measure the HTTP-ingest and disk-copy limits (bench/limits.ts) too. */
  limit: boolean;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A one-file tar layer of `size` random bytes. */
function randomLayer(size: number): Buffer {
  const data = randomBytes(size);
  return Buffer.concat([encodeFileHeader({ path: 'data.bin', size, mode: 0o644, mtime: 0 }), data, Buffer.alloc(paddingFor(size)), endOfArchive()]);
}

async function putBlob(layout: string, mediaType: string, data: Buffer) {
  const hex = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

/** Writes the OCI layout: `images` of each release, the second changing the last layer. */
async function makeContent(layout: string, { images: IMAGES, layers: LAYERS, layerBytes: LAYER_BYTES }: ImagesShape): Promise<{ v1: string[]; v2: string[] }> {
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index: { schemaVersion: 2; manifests: unknown[] } = { schemaVersion: 2, manifests: [] };
  const refs = { v1: [] as string[], v2: [] as string[] };
  for (let i = 0; i < IMAGES; i++) {
    const layers = [];
    for (let l = 0; l < LAYERS; l++) layers.push(await putBlob(layout, 'application/vnd.oci.image.layer.v1.tar', randomLayer(LAYER_BYTES)));
    for (const release of ['v1', 'v2'] as const) {
      if (release === 'v2') layers[LAYERS - 1] = await putBlob(layout, 'application/vnd.oci.image.layer.v1.tar', randomLayer(LAYER_BYTES));
      const config = await putBlob(layout, 'application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((x) => x.digest) }, config: {} })));
      const manifest = await putBlob(layout, 'application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers })));
      const ref = `img${i}-${release}`;
      index.manifests.push({ ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref } });
      refs[release].push(ref);
    }
  }
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  return refs;
}

/** An images suite: first release, upgrade, re-import and push against skopeo (and raw ingest). */
async function imagesBench(suite: string, shape: ImagesShape) {
  const { images: IMAGES, layers: LAYERS, layerBytes: LAYER_BYTES } = shape;
  console.error(`bench ${suite}: ${IMAGES} images x ${LAYERS} layers x ${LAYER_BYTES / MB} MB; the upgrade changes one layer per image`);
  const work = join(benchWork, suite);
  const layout = join(work, 'images');
  const refs = await makeContent(layout, shape);
  const keys = await generateSigningKeys(join(work, 'keys'));
  const bins: Record<'v1' | 'v2', string> = { v1: '', v2: '' };
  for (const [release, version] of [['v1', '1.0.0'], ['v2', '1.1.0']] as const) {
    const spec = join(work, `bundle-${release}.yaml`);
    await writeFile(spec, stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'bench', version, images: refs[release].map((ref, i) => ({ source: `oci:./images:${ref}`, target: `bench/img${i}:${release}` })) }));
    const out = join(work, release);
    await mkdir(out, { recursive: true });
    bins[release] = (await buildBundle({ specPath: spec, out, privateKeyPath: keys.privateKeyPath })).path;
  }
  const firstBytes = IMAGES * LAYERS * LAYER_BYTES;
  const upgradeBytes = IMAGES * LAYER_BYTES;
  // --import-only: the content layout is not read again (no skopeo, no limits); giving its
  // space back lets a 20 GB run fit the disk.
  const importOnly = values['import-only'] === true;
  if (importOnly) await rm(layout, { recursive: true, force: true });

  // --profile DIR: the daemon writes a V8 CPU profile there when it stops (node --cpu-prof).
  const box = await startAppliance(`${suite}-airgap`, keys.publicKeyPath, values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []);
  const first = await timed(() => importBin(box.stateDir, bins.v1));
  const upgrade = await timed(() => importBin(box.stateDir, bins.v2));
  const again = await timed(() => importBin(box.stateDir, bins.v2));
  const peakRss = await daemonPeakRss(box.stateDir);
  // Deleting the first release: the layer each image changed is its alone, so garbage
  // collection gives back one layer per image; the time includes both registries' GC.
  const deleted = await timed(async () => JSON.parse((await execa(AIRGAP, ['releases', 'delete', '1.0.0', '--json', '--state-dir', box.stateDir])).stdout) as { gc: { bytesReclaimed: number; seconds: number; registries: Array<{ name: string; seconds: number }> } });
  await box.stop();

  const skipped = { seconds: Number.NaN, value: { status: 'skipped', bytesPushed: 0 } };
  const plain = importOnly ? undefined : await startAppliance(`${suite}-skopeo`, keys.publicKeyPath);
  const skopeo = async (release: 'v1' | 'v2') => {
    for (const [i, ref] of refs[release].entries()) {
      await execa('skopeo', ['copy', '--quiet', '--dest-cert-dir', plain!.certDir, '--dest-creds', plain!.creds, `oci:${layout}:${ref}`, `docker://${plain!.registry}/bench/img${i}:${release}`]);
    }
  };
  const skopeoFirst = plain ? await timed(() => skopeo('v1')) : skipped;
  const skopeoUpgrade = plain ? await timed(() => skopeo('v2')) : skipped;
  await plain?.stop();

  // airgap push of the same .bin files into the same kind of registry (TLS, htpasswd), as
  // an admin pushes into a site's registry: verify every entry, then push.
  const target = importOnly ? undefined : await startAppliance(`${suite}-push`, keys.publicKeyPath);
  const pushBin = async (release: 'v1' | 'v2') => {
    const [pushUser, pushPassword] = [target!.creds.slice(0, target!.creds.indexOf(':')), target!.creds.slice(target!.creds.indexOf(':') + 1)];
    const r = await execa(AIRGAP, ['push', bins[release], '--to', target!.registry, '--ca-file', join(target!.certDir, 'ca.crt'), '--username', pushUser, '--password-stdin', '--key', keys.publicKeyPath, '--json'], {
      input: `${pushPassword}\n`,
      env: { XDG_STATE_HOME: join(work, 'push-state') },
    });
    return JSON.parse(r.stdout) as { status: string; bytesPushed: number };
  };
  const pushFirst = target ? await timed(() => pushBin('v1')) : skipped;
  const pushUpgrade = target ? await timed(() => pushBin('v2')) : skipped;
  await target?.stop();

  // The limits (bench/limits.ts): the same blobs through the registry's API by a minimal
  // client, and copied on the same disk; the import's lane count, 4.
  let limits: { http: number; disk: number } | undefined;
  if (shape.limit && !importOnly) {
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    const blobFiles: string[] = [];
    for (const ref of refs.v1) {
      const m = index.manifests.find((x) => x.annotations['org.opencontainers.image.ref.name'] === ref)!;
      const manifest = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', m.digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const d of [manifest.config, ...manifest.layers]) blobFiles.push(join(layout, 'blobs', 'sha256', d.digest.slice(7)));
    }
    const raw = await startAppliance(`${suite}-raw`, keys.publicKeyPath);
    const http = await httpIngestLimit({ registry: raw.registry, caPem: await readFile(join(raw.certDir, 'ca.crt'), 'utf8'), creds: raw.creds, blobs: blobFiles });
    await raw.stop();
    const disk = await diskCopyLimit({ dir: join(work, 'disk-limit'), blobs: blobFiles });
    limits = { http, disk };
  }

  const row = (what: string, seconds: number, bytes: number, skopeoSeconds?: number) => ({
    what,
    seconds: Math.round(seconds * 100) / 100,
    mbPerSecond: bytes ? Math.round((bytes / MB / seconds) * 10) / 10 : null,
    ratioToSkopeo: skopeoSeconds ? Math.round((seconds / skopeoSeconds) * 100) / 100 : null,
    ratioToHttpLimit: bytes && limits ? Math.round((seconds / (limits.http * (bytes / firstBytes))) * 100) / 100 : null,
    ratioToDiskLimit: bytes && limits ? Math.round((seconds / (limits.disk * (bytes / firstBytes))) * 100) / 100 : null,
  });
  const results = {
    parameters: { images: IMAGES, layersPerImage: LAYERS, layerMB: LAYER_BYTES / MB, firstReleaseMB: firstBytes / MB, upgradeMB: upgradeBytes / MB },
    rows: [
      row('airgap import, first release', first.seconds, firstBytes, skopeoFirst.seconds),
      row('airgap import, upgrade (1 layer per image)', upgrade.seconds, upgradeBytes, skopeoUpgrade.seconds),
      row('airgap import, re-import', again.seconds, 0),
      // The daemon's own time (its result's `seconds`), without the CLI's start (Node and its modules).
      row('airgap import, re-import (in the daemon)', again.value.seconds, 0),
      row('airgap releases delete 1.0.0 (with garbage collection)', deleted.seconds, 0),
      row('airgap push to a registry, first release', pushFirst.seconds, firstBytes, skopeoFirst.seconds),
      row('airgap push to a registry, upgrade', pushUpgrade.seconds, upgradeBytes, skopeoUpgrade.seconds),
      row('skopeo copy, first release', skopeoFirst.seconds, firstBytes),
      row('skopeo copy, upgrade', skopeoUpgrade.seconds, upgradeBytes),
      ...(limits ? [row('limit: HTTP ingest, 4 lanes, POST+PUT', limits.http, firstBytes), row('limit: disk copy, 4 lanes, fsync', limits.disk, firstBytes)] : []),
    ].filter((r) => !Number.isNaN(r.seconds)),
    imports: { first: first.value, upgrade: upgrade.value, reimport: again.value },
    deleteFirstRelease: { seconds: Math.round(deleted.seconds * 100) / 100, gcSeconds: deleted.value.gc.seconds, bytesReclaimed: deleted.value.gc.bytesReclaimed, registries: deleted.value.gc.registries },
    pushes: { first: pushFirst.value, upgrade: pushUpgrade.value },
    daemonPeakRssMB: Math.round((peakRss / MB) * 10) / 10,
    extraDiskPercentOfPayload: Math.round((Math.max(first.value.extraDiskBytes, upgrade.value.extraDiskBytes) / firstBytes) * 10000) / 100,
    secondsPerGBPushed: {
      first: Math.round((first.seconds / (first.value.bytesPushed / 1024 ** 3)) * 100) / 100,
      upgrade: Math.round((upgrade.seconds / (upgrade.value.bytesPushed / 1024 ** 3)) * 100) / 100,
    },
  };
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`${pad('', 50)}${pad('seconds', 10)}${pad('MB/s', 9)}${pad('x skopeo', 10)}${pad('x HTTP', 8)}x disk`);
  for (const r of results.rows) console.log(`${pad(r.what, 50)}${pad(String(r.seconds), 10)}${pad(String(r.mbPerSecond ?? '-'), 9)}${pad(String(r.ratioToSkopeo ?? '-'), 10)}${pad(String(r.ratioToHttpLimit ?? '-'), 8)}${r.ratioToDiskLimit ?? '-'}`);
  console.log(`release delete: ${results.deleteFirstRelease.bytesReclaimed} bytes given back; garbage collection ${results.deleteFirstRelease.gcSeconds.toFixed(2)} s (${results.deleteFirstRelease.registries.map((r) => `${r.name} ${r.seconds.toFixed(2)} s`).join(', ')})`);
  console.log(`daemon peak RSS ${results.daemonPeakRssMB} MB; extra disk during import ${results.extraDiskPercentOfPayload}% of the payload; re-import pushed ${again.value.bytesPushed} bytes (${again.value.status})`);
  console.log(`seconds per GB pushed: first ${results.secondsPerGBPushed.first}, upgrade ${results.secondsPerGBPushed.upgrade}`);
  return results;
}

async function main(): Promise<void> {
  await rm(benchWork, { recursive: true, force: true });
  await mkdir(benchWork, { recursive: true });
  const suite = values.suite;
  if (!['all', 'images', 'many-images', 'files'].includes(suite)) throw new Error(`--suite must be all, images, many-images or files, not ${suite}`);
  const runs = (name: string) => suite === 'all' || suite === name;
  const results = {
    date: new Date().toISOString(),
    // The images suite's figures stay at the top level, as in earlier results.
    ...(runs('images') ? await imagesBench('images', { images: Number(values.images), layers: Number(values.layers), layerBytes: Number(values['layer-mb']) * MB, limit: true }) : {}),
    ...(runs('many-images') ? { manyImages: await imagesBench('many-images', { images: Number(values['many-images']), layers: 3, layerBytes: MB, limit: true }) } : {}),
    ...(runs('files') ? { manyFiles: await manyFilesBench({ files: Number(values.files), hostileEntries: Number(values['hostile-entries']) }) } : {}),
    node: process.version,
  };
  const dir = join(root, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${results.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written to ${file}`);
  if (!values.keep) await rm(benchWork, { recursive: true, force: true });
}

await main();
