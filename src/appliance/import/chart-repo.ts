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
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { Document } from 'yaml';
import { writeFileAtomic } from '../../kit/fs.js';
import { PayloadError } from '../../kit/errors.js';
import { openEntryStream, readSmallEntry } from '../../format/reader.js';
import { blobPath } from '../../format/layout.js';
import { MEDIA_TYPE_HELM_CHART, MEDIA_TYPE_HELM_CONFIG } from '../../oci/manifest.js';
import type { Db } from '../store/db.js';
import { listArtifacts } from '../store/releases.js';
import type { ImportContext } from './context.js';
import { isHelmVersion } from '../../build/helm-chart.js';
import { hashFile } from '../../build/artifacts.js';
import { hexOfDigest } from '../../kit/digest.js';

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


/** sha256 hex of a file (the builder's hashFile), or undefined when it cannot be read. */
async function sha256OfFile(file: string): Promise<string | undefined> {
  return hashFile(file).then((h) => hexOfDigest(h.digest), () => undefined);
}

/** Helm v3's chart.Metadata fields (pkg/chart/metadata.go): what an index entry may carry besides urls, created, digest. */
const METADATA_FIELDS = ['name', 'home', 'sources', 'version', 'description', 'keywords', 'maintainers', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'deprecated', 'annotations', 'kubeVersion', 'dependencies', 'type'] as const;
/** Helm v3's chart.Dependency fields: Helm reads index.yaml strictly, an unknown field fails the whole index. */
const DEPENDENCY_FIELDS = ['name', 'version', 'repository', 'condition', 'tags', 'enabled', 'import-values', 'alias'] as const;
/** A chart name Helm loads and a file name can hold. */
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The metadata kept for the index: Helm's fields only, the name and version checked. Undefined when unusable. */
function indexMetadata(raw: unknown): ChartMeta['metadata'] | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (typeof o.name !== 'string' || !CHART_NAME.test(o.name) || typeof o.version !== 'string' || !isHelmVersion(o.version)) return undefined;
  const out: Record<string, unknown> = {};
  for (const f of METADATA_FIELDS) if (o[f] !== undefined) out[f] = o[f];
  if (Array.isArray(out.dependencies)) {
    out.dependencies = out.dependencies.map((d: unknown) => (typeof d === 'object' && d !== null ? Object.fromEntries(DEPENDENCY_FIELDS.filter((f) => (d as Record<string, unknown>)[f] !== undefined).map((f) => [f, (d as Record<string, unknown>)[f]])) : d));
  }
  return out as ChartMeta['metadata'];
}

/** `text` as RFC 3339 (Helm decodes `created` into a time.Time), else `fallback`. */
function rfc3339(text: string | undefined, fallback: Date): string {
  const ms = text ? Date.parse(text) : Number.NaN;
  return new Date(Number.isFinite(ms) ? ms : fallback.getTime()).toISOString();
}

/** The .bin's entry of blob `digest`. Throws PayloadError AG_NOT_FOUND. */
function entryOf(ctx: ImportContext, digest: string) {
  const entry = ctx.opened.byPath.get(blobPath(digest));
  if (!entry) throw new PayloadError('AG_NOT_FOUND', `no entry for blob ${digest} in ${ctx.opened.file}`);
  return entry;
}

/** True when `dir` holds chart `manifestDigest`'s metadata and the archive it names, whole. */
export async function chartInstalled(dir: string, manifestDigest: string): Promise<boolean> {
  const text = await readFile(join(dir, META_DIR, `${manifestDigest.slice('sha256:'.length)}.json`), 'utf8').catch(() => undefined);
  if (!text) return false;
  try {
    const meta = JSON.parse(text) as ChartMeta | { skipped: string };
    if ('skipped' in meta) return true;
    return SAFE_FILE.test(meta.file) && (await sha256OfFile(join(dir, meta.file))) === meta.digest;
  } catch {
    return false;
  }
}

/**
 * Writes the archive and metadata of every chart of the import into `dir` (files stage).
 * Charts already there whole (same manifest digest, the archive's sha256 right) are kept.
 * An archive name another chart holds gets the archive's digest in its name. Throws
 * PayloadError AG_ENTRY_DIGEST when the .bin's bytes are damaged, AG_TRUNCATED or
 * AG_READ_FAILED when it cannot be read (nothing is left half-written), and the file
 * system's errors.
 */
export async function installCharts(ctx: ImportContext, dir: string): Promise<void> {
  for (const a of ctx.plan.artifacts) {
    if (a.kind !== 'chart') continue;
    ctx.signal.throwIfAborted();
    if (await chartInstalled(dir, a.digest)) continue;
    const top = a.manifests[a.manifests.length - 1]!;
    const manifest = JSON.parse(top.bytes.toString('utf8')) as { config?: { digest?: string; mediaType?: string }; layers?: Array<{ digest?: string; mediaType?: string }>; annotations?: Record<string, string> };
    const layer = manifest.layers?.find((l) => l.mediaType === MEDIA_TYPE_HELM_CHART);
    const metadata = manifest.config?.mediaType === MEDIA_TYPE_HELM_CONFIG && manifest.config.digest && layer?.digest
      ? indexMetadata(JSON.parse((await readSmallEntry(ctx.opened.handle, entryOf(ctx, manifest.config.digest), MAX_CONFIG_BYTES)).toString('utf8')) as unknown)
      : undefined;
    if (!metadata || !layer?.digest) {
      const skipped = "no Helm config and chart layer, or a name or version Helm does not load";
      ctx.log.warn({ target: a.target }, `chart has ${skipped}: not in the classic repository`);
      // Recorded, so that a re-import of the release is not taken for a repair each time.
      await writeFileAtomic(join(dir, META_DIR, `${a.digest.slice('sha256:'.length)}.json`), JSON.stringify({ manifestDigest: a.digest, skipped }), 0o644);
      continue;
    }
    const hex = layer.digest.slice('sha256:'.length);
    let file = `${metadata.name}-${metadata.version}.tgz`;
    const existing = await sha256OfFile(join(dir, file));
    if (existing !== undefined && existing !== hex) file = file.replace(/\.tgz$/, `-${hex.slice(0, 12)}.tgz`);
    if ((await sha256OfFile(join(dir, file))) !== hex) {
      const entry = openEntryStream(ctx.opened, blobPath(layer.digest));
      // Read, hashed and written in one loop: a read error (a truncated or replaced .bin)
      // fails this write, and the archive is renamed into place only when it matches.
      async function* checked(): AsyncGenerator<Buffer> {
        const hash = createHash('sha256');
        for await (const chunk of entry) {
          hash.update(chunk as Buffer);
          yield chunk as Buffer;
        }
        if (hash.digest('hex') !== hex) throw new PayloadError('AG_ENTRY_DIGEST', `chart ${a.target}: its archive does not match its digest; the file is damaged`, { hint: 'copy the file again' });
      }
      await writeFileAtomic(join(dir, file), checked(), 0o644);
    }
    const meta: ChartMeta = { manifestDigest: a.digest, file, digest: hex, created: rfc3339(manifest.annotations?.['org.opencontainers.image.created'], new Date()), metadata };
    await writeFileAtomic(join(dir, META_DIR, `${a.digest.slice('sha256:'.length)}.json`), JSON.stringify(meta), 0o644);
  }
}

/**
 * Writes `dir/index.yaml` from the charts of every recorded release (each chart once,
 * newest version first, as `helm repo index` orders them), then removes metadata and
 * archives no release names (metadata first: a crash between the two leaves an archive
 * too many, never an entry without its archive). Helm reads the index as YAML 1.1 and
 * strictly: every key and string is double-quoted (an unquoted `on` or `1.10` would
 * change type) and entries carry Helm v3's fields only. Returns the number of chart
 * versions listed.
 */
export async function writeChartIndex(db: Db, dir: string, now = new Date()): Promise<number> {
  const digests = [...new Set(listArtifacts(db, { kind: 'chart', files: false }).map((a) => a.digest.slice('sha256:'.length)))];
  const metas: ChartMeta[] = [];
  for (const hex of digests) {
    const text = await readFile(join(dir, META_DIR, `${hex}.json`), 'utf8').catch(() => undefined);
    if (!text) continue;
    try {
      const meta = JSON.parse(text) as ChartMeta;
      const metadata = indexMetadata(meta.metadata);
      if (metadata && SAFE_FILE.test(meta.file)) metas.push({ ...meta, metadata });
    } catch {
      // A damaged metadata file: that chart is left out until its release is imported again.
    }
  }
  const entries = new Map<string, Array<Record<string, unknown>>>();
  const byVersion = (a: ChartMeta, b: ChartMeta) => {
    const [va, vb] = [semver.valid(a.metadata.version, { loose: true }), semver.valid(b.metadata.version, { loose: true })];
    return va && vb ? semver.rcompare(va, vb) : b.metadata.version.localeCompare(a.metadata.version);
  };
  for (const m of metas.sort(byVersion)) {
    const list = entries.get(m.metadata.name) ?? [];
    list.push({ ...m.metadata, urls: [m.file], created: rfc3339(m.created, now), digest: m.digest });
    entries.set(m.metadata.name, list);
  }
  const doc = new Document({ apiVersion: 'v1', entries: Object.fromEntries([...entries.keys()].sort().map((k) => [k, entries.get(k)!])), generated: now.toISOString() });
  const text = doc.toString({ defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'QUOTE_DOUBLE', lineWidth: 0 });
  await writeFileAtomic(join(dir, CHART_INDEX), text, 0o644);

  const keepFiles = new Set([CHART_INDEX, ...metas.map((m) => m.file)]);
  const keepMeta = new Set(digests.map((hex) => `${hex}.json`));
  for (const name of await readdir(join(dir, META_DIR)).catch(() => [] as string[])) {
    if (!keepMeta.has(name)) await rm(join(dir, META_DIR, name), { force: true });
  }
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if ((name.endsWith('.tgz') && !keepFiles.has(name)) || (name.startsWith('.') && name.endsWith('.tmp'))) await rm(join(dir, name), { force: true });
  }
  return metas.length;
}
