/**
 * Real content for tests: a busybox image made with umoci from Debian's busybox-static,
 * synthetic multi-layer and multi-arch images written as OCI layouts, a Helm chart, a pack,
 * files, and bundle.yaml files tying them together.
 */
import { mkdir, writeFile, chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { encodeFileHeader, endOfArchive, paddingFor } from '../../src/format/tar.js';

export const BUSYBOX = '/bin/busybox';

function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Writes a blob into an OCI layout and returns its descriptor. */
async function putBlob(layout: string, mediaType: string, bytes: Buffer) {
  const digest = digestOf(bytes);
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** An uncompressed layer tar holding one file of `size` random (or given) bytes. */
export function layerTar(name: string, content: Buffer): Buffer {
  return Buffer.concat([
    encodeFileHeader({ path: name, size: content.length, mode: 0o644, mtime: 0 }),
    content,
    Buffer.alloc(paddingFor(content.length)),
    endOfArchive(),
  ]);
}

export interface SyntheticImage {
  /** ref.name in the layout. */
  ref: string;
  /** Layer contents; one layer each. */
  layers: Buffer[];
  /** Platforms: more than one makes an index sharing the layers. */
  platforms?: Array<{ os: string; architecture: string; variant?: string }>;
}

/**
 * Writes images into an OCI image layout at `layout` (creating it or adding to it).
 * Returns each ref's top digest and media type.
 */
export async function writeSyntheticLayout(layout: string, images: SyntheticImage[]): Promise<Record<string, { digest: string; mediaType: string }>> {
  await mkdir(layout, { recursive: true });
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const indexPath = join(layout, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8').catch(() => '{"schemaVersion":2,"manifests":[]}')) as { schemaVersion: 2; manifests: unknown[] };
  const out: Record<string, { digest: string; mediaType: string }> = {};
  for (const image of images) {
    const layers = [];
    for (const [i, content] of image.layers.entries()) layers.push(await putBlob(layout, 'application/vnd.oci.image.layer.v1.tar', layerTar(`layer-${i}.bin`, content)));
    const platforms = image.platforms ?? [{ os: 'linux', architecture: 'amd64' }];
    const manifests = [];
    for (const platform of platforms) {
      const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} }));
      const configDesc = await putBlob(layout, 'application/vnd.oci.image.config.v1+json', config);
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers }));
      manifests.push({ ...(await putBlob(layout, 'application/vnd.oci.image.manifest.v1+json', manifest)), platform });
    }
    let top;
    if (manifests.length === 1) {
      const { platform: _p, ...desc } = manifests[0]!;
      top = desc;
    } else {
      const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
      top = await putBlob(layout, 'application/vnd.oci.image.index.v1+json', idx);
    }
    index.manifests.push({ ...top, annotations: { 'org.opencontainers.image.ref.name': image.ref } });
    out[image.ref] = { digest: top.digest, mediaType: top.mediaType };
  }
  await writeFile(indexPath, JSON.stringify(index));
  return out;
}

/** A real busybox image (linux/amd64) made with umoci; returns its manifest digest. */
export async function makeBusyboxLayout(layout: string, work: string, ref = 'busybox'): Promise<string> {
  const bundle = join(work, `bundle-${ref}`);
  const image = `${layout}:${ref}`;
  await execa('umoci', ['init', '--layout', layout]).catch(() => undefined);
  await execa('umoci', ['new', '--image', image]);
  await execa('umoci', ['unpack', '--image', image, bundle]);
  await mkdir(join(bundle, 'rootfs', 'bin'), { recursive: true });
  await execa('cp', [BUSYBOX, join(bundle, 'rootfs', 'bin', 'busybox')]);
  await execa('ln', ['-s', 'busybox', join(bundle, 'rootfs', 'bin', 'sh')]);
  await execa('umoci', ['repack', '--image', image, bundle]);
  await execa('umoci', ['config', '--image', image, '--config.cmd', '/bin/sh', '--os', 'linux', '--architecture', 'amd64']);
  await execa('rm', ['-rf', bundle]);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)!.digest;
}

/** A Helm chart archive `<dir>/<name>-<version>.tgz` as `helm package` lays it out. */
export async function makeChart(dir: string, name: string, version: string, chartYaml = `apiVersion: v2\nname: ${name}\nversion: ${version}\ndescription: test chart\n`): Promise<string> {
  const src = join(dir, 'chart-src');
  await mkdir(join(src, name, 'templates'), { recursive: true });
  await writeFile(join(src, name, 'Chart.yaml'), chartYaml);
  await writeFile(join(src, name, 'values.yaml'), 'replicas: 1\n');
  await writeFile(join(src, name, 'templates', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n');
  const tgz = join(dir, `${name}-${version}.tgz`);
  await execa('tar', ['-C', src, '-czf', tgz, name]);
  return tgz;
}

/** A pack folder with pack.yaml and some content. */
export async function makePack(dir: string, name: string, version: string): Promise<string> {
  const pack = join(dir, name);
  await mkdir(join(pack, 'manifests'), { recursive: true });
  await writeFile(join(pack, 'pack.yaml'), `name: ${name}\nversion: ${version}\ndescription: test pack\n`);
  await writeFile(join(pack, 'manifests', 'deploy.yaml'), `kind: Deployment # ${name}\n`);
  return pack;
}

/** A folder of files for the repository: yaml files, a nested one and an executable. */
export async function makeFiles(dir: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'a.yaml': Buffer.from('a: 1\n'),
    'nested/b.yaml': Buffer.from('b: 2\n'),
    'bin/tool': Buffer.from('#!/bin/sh\necho tool\n'),
    'big.bin': randomBytes(300_000),
  };
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), content);
  }
  await chmod(join(dir, 'bin/tool'), 0o755);
  return files;
}

/** Writes bundle.yaml into `dir`. */
export async function writeBundle(dir: string, spec: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'bundle.yaml');
  await writeFile(path, stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', ...spec }));
  return path;
}
