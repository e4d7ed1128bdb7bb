/**
 * The push plan of an opened .bin: for every image, chart and pack, the registry and
 * repository it goes to, its manifests in push order (children before the index that
 * names them) and the blobs they need. Reads manifests from the .bin (small entries) and
 * checks each against its digest; blobs are not read here.
 */
import { setImmediate } from 'node:timers/promises';
import { PayloadError } from '../kit/errors.js';
import { sha256Digest } from '../kit/digest.js';
import { ANNOTATION_KIND, ANNOTATION_REF_NAME, CHART_REPOSITORY_PREFIX, PACK_REPOSITORY_PREFIX, blobPath } from '../format/layout.js';
import { splitTarget } from '../oci/reference.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor } from '../oci/manifest.js';
import { readSmallEntry, type OpenedPayload } from '../format/reader.js';
import type { TocFile } from '../format/toc.js';
import type { Destination } from './context.js';

export type ArtifactKindPushed = 'image' | 'chart' | 'pack';

export interface PlannedBlob {
  digest: string;
  /** Bytes. */
  size: number;
  /** Tar entry path: `oci/blobs/sha256/<hex>` ('' in a plan read from registries). */
  path: string;
  /** In a plan read from registries (plan-registry.ts): where the blob is read from. */
  from?: { registry: Destination; repository: string };
}

export interface PlannedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface PlannedArtifact {
  kind: ArtifactKindPushed;
  registry: Destination;
  repository: string;
  tag: string;
  /** `repository:tag` */
  target: string;
  /** Digest and media type of the top manifest or index (what the tag points at). */
  digest: string;
  mediaType: string;
  /** Bytes of every manifest and blob. */
  size: number;
  platforms: string[];
  /** Push order: children first, the top manifest or index last. */
  manifests: PlannedManifest[];
  /** Config and layer blobs, each once. */
  blobs: PlannedBlob[];
}

export interface TransferPlan {
  artifacts: PlannedArtifact[];
  files: TocFile[];
  fileBytes: number;
}

function registryFor(kind: ArtifactKindPushed): Destination {
  return kind === 'pack' ? 'packs' : 'images';
}

/**
 * Builds the plan. Throws PayloadError AG_LAYOUT when index.json names something the
 * TOC does not list, AG_ENTRY_DIGEST when a manifest's bytes do not match its digest.
 */
export async function planTransfer(opened: OpenedPayload): Promise<TransferPlan> {
  const { toc } = opened;
  const platformsOf = new Map(toc.images.map((i) => [i.target, i.platforms]));
  const manifestCache = new Map<string, PlannedManifest & { children: Descriptor[]; blobs: Descriptor[] }>();

  const readManifest = async (d: Descriptor) => {
    const cached = manifestCache.get(d.digest);
    if (cached) return cached;
    const entry = opened.byPath.get(blobPath(d.digest));
    if (!entry) throw new PayloadError('AG_LAYOUT', `manifest ${d.digest} is not in the payload`);
    const bytes = await readSmallEntry(opened.handle, entry, MAX_MANIFEST_BYTES);
    if (sha256Digest(bytes) !== d.digest) throw new PayloadError('AG_ENTRY_DIGEST', `manifest ${d.digest} does not match its digest; the file is damaged`, { hint: 'copy the file again' });
    const parsed = parseManifest(bytes, d.mediaType);
    const value = {
      digest: d.digest,
      mediaType: parsed.mediaType,
      bytes,
      children: parsed.kind === 'index' ? parsed.children : [],
      blobs: parsed.kind === 'manifest' ? parsed.blobs : [],
    };
    manifestCache.set(d.digest, value);
    return value;
  };

  const artifacts: PlannedArtifact[] = [];
  for (const descriptor of opened.index) {
    const target = descriptor.annotations?.[ANNOTATION_REF_NAME];
    const kind = (descriptor.annotations?.[ANNOTATION_KIND] ?? 'image') as ArtifactKindPushed;
    const split = target ? splitTarget(target) : undefined;
    if (!target || !split || !['image', 'chart', 'pack'].includes(kind)) {
      throw new PayloadError('AG_LAYOUT', `index.json names ${descriptor.digest} without a valid target or kind`);
    }
    // Charts and packs stay in their namespaces, and images out of them: a payload can
    // never overwrite another kind's tags.
    const listed = kind === 'chart' ? toc.charts : kind === 'pack' ? toc.packs : toc.images;
    const prefix = kind === 'chart' ? `${CHART_REPOSITORY_PREFIX}/` : kind === 'pack' ? `${PACK_REPOSITORY_PREFIX}/` : undefined;
    const inNamespace = prefix ? split.repository.startsWith(prefix) : !split.repository.startsWith(`${CHART_REPOSITORY_PREFIX}/`) && !split.repository.startsWith(`${PACK_REPOSITORY_PREFIX}/`);
    if (!inNamespace || !listed.some((l: { target: string }) => l.target === target)) {
      throw new PayloadError('AG_LAYOUT', `the ${kind} target '${target}' is not allowed: ${prefix ? `${kind}s live under ${prefix}` : `images may not use ${CHART_REPOSITORY_PREFIX}/ or ${PACK_REPOSITORY_PREFIX}/`}, as the TOC lists them`);
    }
    const manifests: PlannedManifest[] = [];
    const blobs = new Map<string, PlannedBlob>();
    const seen = new Set<string>();
    const visit = async (d: Descriptor): Promise<void> => {
      if (seen.has(d.digest)) return;
      seen.add(d.digest);
      const m = await readManifest(d);
      for (const child of m.children) await visit(child);
      for (const b of m.blobs) blobs.set(b.digest, { digest: b.digest, size: b.size, path: blobPath(b.digest) });
      manifests.push({ digest: m.digest, mediaType: m.mediaType, bytes: m.bytes });
    };
    await visit(descriptor);
    const top = manifests[manifests.length - 1]!;
    const size = manifests.reduce((n, m) => n + m.bytes.length, 0) + [...blobs.values()].reduce((n, b) => n + b.size, 0);
    artifacts.push({
      kind,
      registry: registryFor(kind),
      repository: split.repository,
      tag: split.tag,
      target,
      digest: top.digest,
      mediaType: top.mediaType,
      size,
      platforms: platformsOf.get(target) ?? [],
      manifests,
      blobs: [...blobs.values()],
    });
  }
  // A file target that is also a folder of another (`a` and `a/b`) cannot be written.
  const fileTargets = new Set(toc.files.map((f) => f.target));
  let count = 0;
  for (const f of toc.files) {
    if (++count % 20_000 === 0) await setImmediate(); // a 100,000-file release must not stall the daemon
    const parts = f.target.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (fileTargets.has(folder)) throw new PayloadError('AG_TOC_INVALID', `file '${f.target}' lies inside '${folder}', which is a file too`);
    }
  }
  return { artifacts, files: toc.files, fileBytes: toc.files.reduce((n, f) => n + f.size, 0) };
}
