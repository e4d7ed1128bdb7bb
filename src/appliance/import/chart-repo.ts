/**
 * The classic Helm chart repository at `https://<repo-ip>/charts/` (Helm's pkg/repo
 * layout): `index.yaml` and the chart archives of every release on the box, for
 * installers that want `helm repo add` rather than OCI. The import's files stage writes
 * each chart's archive (the chart layer, straight from the .bin, checked against its
 * digest) and its Helm metadata (the chart's config blob, which is Helm's chart.Metadata)
 * under `<state-dir>/charts/`; after each commit, and at each start, `index.yaml` is
 * written again from the charts of the recorded releases, and archives no release names
 * are removed.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import semver from 'semver';
import { stringify } from 'yaml';
import { writeFileAtomic } from '../../kit/fs.js';
import { PayloadError } from '../../kit/errors.js';
import { openEntryStream } from '../../format/reader.js';
import { blobPath } from '../../format/layout.js';
import { MEDIA_TYPE_HELM_CHART, MEDIA_TYPE_HELM_CONFIG } from '../../oci/manifest.js';
import type { Db } from '../store/db.js';
import { listArtifacts } from '../store/releases.js';
import type { ImportContext } from './context.js';

/** The index a Helm client reads: `<url>/index.yaml`. */
export const CHART_INDEX = 'index.yaml';
/** Each chart's metadata, by the hex of its manifest digest (dot folder: never served). */
const META_DIR = '.meta';
/** A chart's config blob is small; anything bigger is not Helm's metadata. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Archive names the repository serves: Helm's `<name>-<version>.tgz`. */
const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,250}\.tgz$/;

/** What is kept for each chart: what index.yaml's entry is made of. */
interface ChartMeta {
  manifestDigest: string;
  /** The archive's name in the folder. */
  file: string;
  /** sha256 hex of the archive (index.yaml's `digest`). */
  digest: string;
  /** The manifest's `org.opencontainers.image.created`, else the import's time. */
  created: string;
  /** Helm's chart.Metadata, as the config blob has it. */
  metadata: Record<string, unknown> & { name: string; version: string };
}

async function readEntry(ctx: ImportContext, digest: string, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of openEntryStream(ctx.opened, blobPath(digest))) {
    size += (chunk as Buffer).length;
    if (size > max) throw new PayloadError('AG_LAYOUT', `blob ${digest} is larger than ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function sha256OfFile(file: string): Promise<string | undefined> {
  try {
    const hash = createHash('sha256');
    for await (const chunk of (await import('node:fs')).createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return undefined;
  }
}

/**
 * Writes the archive and metadata of every chart of the import into `dir` (files stage).
 * Charts already there (same manifest digest) are kept. An archive name another chart
 * holds gets the archive's digest in its name. Throws PayloadError AG_ENTRY_DIGEST when
 * the .bin's bytes are damaged (nothing is left half-written), and the file system's errors.
 */
export async function installCharts(ctx: ImportContext, dir: string): Promise<void> {
  for (const a of ctx.plan.artifacts) {
    if (a.kind !== 'chart') continue;
    ctx.signal.throwIfAborted();
    const metaFile = join(dir, META_DIR, `${a.digest.slice('sha256:'.length)}.json`);
    if (await stat(metaFile).then(() => true, () => false)) continue;
    const top = a.manifests[a.manifests.length - 1]!;
    const manifest = JSON.parse(top.bytes.toString('utf8')) as { config?: { digest?: string; mediaType?: string }; layers?: Array<{ digest?: string; mediaType?: string }>; annotations?: Record<string, string> };
    const layer = manifest.layers?.find((l) => l.mediaType === MEDIA_TYPE_HELM_CHART);
    if (manifest.config?.mediaType !== MEDIA_TYPE_HELM_CONFIG || !manifest.config.digest || !layer?.digest) {
      ctx.log.warn({ target: a.target }, 'chart has no Helm config or chart layer: not in the classic repository');
      continue;
    }
    const metadata = JSON.parse((await readEntry(ctx, manifest.config.digest, MAX_CONFIG_BYTES)).toString('utf8')) as ChartMeta['metadata'];
    const hex = layer.digest.slice('sha256:'.length);
    let file = `${String(metadata.name)}-${String(metadata.version)}.tgz`;
    if (!SAFE_FILE.test(file)) {
      ctx.log.warn({ target: a.target }, 'chart name or version does not make a file name: not in the classic repository');
      continue;
    }
    const existing = await sha256OfFile(join(dir, file));
    if (existing !== undefined && existing !== hex) file = file.replace(/\.tgz$/, `-${hex.slice(0, 12)}.tgz`);
    if (existing !== hex) {
      const hash = createHash('sha256');
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          callback(null, chunk);
        },
        flush(callback) {
          // The archive is renamed into place only when it matches the digest it is served with.
          callback(hash.digest('hex') === hex ? null : new PayloadError('AG_ENTRY_DIGEST', `chart ${a.target}: its archive does not match its digest; the file is damaged`, { hint: 'copy the file again' }));
        },
      });
      await writeFileAtomic(join(dir, file), openEntryStream(ctx.opened, blobPath(layer.digest)).pipe(hashing), 0o644);
    }
    const created = manifest.annotations?.['org.opencontainers.image.created'] ?? new Date().toISOString();
    const meta: ChartMeta = { manifestDigest: a.digest, file, digest: hex, created, metadata };
    await writeFileAtomic(metaFile, JSON.stringify(meta), 0o644);
  }
}

/**
 * Writes `dir/index.yaml` from the charts of every recorded release (each chart once,
 * newest version first, as `helm repo index` orders them), then removes archives and
 * metadata no release names. Every string is double-quoted: Helm reads the index as
 * YAML 1.1, where an unquoted `on` or `1.10` would change type. Returns the number of
 * chart versions listed.
 */
export async function writeChartIndex(db: Db, dir: string, now = new Date()): Promise<number> {
  const digests = [...new Set(listArtifacts(db, { kind: 'chart', files: false }).map((a) => a.digest.slice('sha256:'.length)))];
  const metas: ChartMeta[] = [];
  for (const hex of digests) {
    const text = await readFile(join(dir, META_DIR, `${hex}.json`), 'utf8').catch(() => undefined);
    if (text) metas.push(JSON.parse(text) as ChartMeta);
  }
  const entries: Record<string, Array<Record<string, unknown>>> = {};
  const byVersion = (a: ChartMeta, b: ChartMeta) => {
    const [va, vb] = [semver.valid(a.metadata.version, { loose: true }), semver.valid(b.metadata.version, { loose: true })];
    return va && vb ? semver.rcompare(va, vb) : b.metadata.version.localeCompare(a.metadata.version);
  };
  for (const m of metas.sort(byVersion)) {
    (entries[m.metadata.name] ??= []).push({ ...m.metadata, urls: [m.file], created: m.created, digest: m.digest });
  }
  const sorted = Object.fromEntries(Object.keys(entries).sort().map((k) => [k, entries[k]]));
  const text = stringify({ apiVersion: 'v1', entries: sorted, generated: now.toISOString() }, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 });
  await writeFileAtomic(join(dir, CHART_INDEX), text, 0o644);

  // What no release names goes: archives and metadata of deleted or unfinished imports.
  const keepFiles = new Set([CHART_INDEX, ...metas.map((m) => m.file)]);
  const keepMeta = new Set(metas.map((m) => `${m.manifestDigest.slice('sha256:'.length)}.json`));
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if ((name.endsWith('.tgz') && !keepFiles.has(name)) || (name.startsWith('.') && name.endsWith('.tmp'))) await rm(join(dir, name), { force: true });
  }
  for (const name of await readdir(join(dir, META_DIR)).catch(() => [] as string[])) {
    if (!keepMeta.has(name)) await rm(join(dir, META_DIR, name), { force: true });
  }
  return metas.length;
}
