/**
 * The push plan of a release that is already in registries (the appliance's own two, when
 * a box forwards what it received to a site's registry): the same shape as a .bin's plan
 * (plan.ts), read from the registries instead. Manifests are fetched by digest, so each
 * is checked against it (RegistryClient.getManifest); blobs are not read here, and the
 * destination registry checks each one's digest when it is uploaded.
 */
import { PassThrough, type Readable } from 'node:stream';
import { CHART_REPOSITORY_PREFIX, PACK_REPOSITORY_PREFIX } from '../format/layout.js';
import { splitTarget } from '../oci/reference.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import type { FetchedManifest } from '../oci/client.js';
import { RegistryError } from '../kit/errors.js';
import type { Destination } from './context.js';
import type { ArtifactKindPushed, PlannedArtifact, PlannedBlob, PlannedManifest, TransferPlan } from './plan.js';

/** A registry a release is read from: what plan and blobs need of a RegistryClient. */
export interface RegistrySource {
  getManifest(repository: string, reference: string): Promise<FetchedManifest>;
  getBlob(repository: string, digest: string, signal?: AbortSignal): Promise<Readable>;
}

/** One image, chart or pack of the release, as its records say: `repository:tag` and its digest. */
export interface ReleaseArtifact {
  kind: ArtifactKindPushed;
  target: string;
  digest: string;
  platforms?: string[] | null;
}

/**
 * Builds the plan of `artifacts` from `sources` (images and charts in `images`, packs in
 * `packs`). Each blob remembers the repository it is read from. Throws RegistryError
 * AG_NOT_FOUND when a manifest is gone, AG_DIGEST_MISMATCH when one does not match its
 * digest, AG_REGISTRY_RESPONSE when one cannot be parsed.
 */
export async function planFromRegistries(sources: Record<Destination, RegistrySource>, artifacts: ReleaseArtifact[]): Promise<TransferPlan> {
  const planned: PlannedArtifact[] = [];
  for (const a of artifacts) {
    const split = splitTarget(a.target);
    if (!split) throw new RegistryError('AG_BAD_REFERENCE', `the release records '${a.target}', which is not repository:tag`);
    const registry: Destination = a.kind === 'pack' ? 'packs' : 'images';
    const prefix = a.kind === 'chart' ? CHART_REPOSITORY_PREFIX : a.kind === 'pack' ? PACK_REPOSITORY_PREFIX : undefined;
    if (prefix && !split.repository.startsWith(`${prefix}/`)) throw new RegistryError('AG_BAD_REFERENCE', `the ${a.kind} '${a.target}' is not under ${prefix}/`);
    const source = sources[registry];
    const manifests: PlannedManifest[] = [];
    const blobs = new Map<string, PlannedBlob>();
    const seen = new Set<string>();
    const visit = async (digest: string, declaredType: string): Promise<void> => {
      if (seen.has(digest)) return;
      seen.add(digest);
      const fetched = await source.getManifest(split.repository, digest);
      let parsed;
      try {
        parsed = parseManifest(fetched.bytes, fetched.mediaType || declaredType);
      } catch (cause) {
        throw new RegistryError('AG_REGISTRY_RESPONSE', `manifest ${split.repository}@${digest} ${(cause as Error).message}`, { cause });
      }
      const children: Descriptor[] = parsed.kind === 'index' ? parsed.children : [];
      for (const child of children) await visit(child.digest, child.mediaType);
      if (parsed.kind === 'manifest') {
        for (const b of parsed.blobs) blobs.set(b.digest, { digest: b.digest, size: b.size, path: '', from: { registry, repository: split.repository } });
      }
      manifests.push({ digest, mediaType: parsed.mediaType, bytes: fetched.bytes });
    };
    await visit(a.digest, '');
    const top = manifests[manifests.length - 1]!;
    planned.push({
      kind: a.kind,
      registry,
      repository: split.repository,
      tag: split.tag,
      target: a.target,
      digest: top.digest,
      mediaType: top.mediaType,
      size: manifests.reduce((n, m) => n + m.bytes.length, 0) + [...blobs.values()].reduce((n, b) => n + b.size, 0),
      platforms: a.platforms ?? [],
      manifests,
      blobs: [...blobs.values()],
    });
  }
  return { artifacts: planned, files: [], fileBytes: 0 };
}

/**
 * `openBlob` for a plan from planFromRegistries: the blob's bytes from the repository it
 * was planned from, as a stream that is returned at once (the request starts behind it)
 * and carries the request's errors.
 */
export function registryBlobOpener(sources: Record<Destination, RegistrySource>, signal?: AbortSignal): (blob: PlannedBlob) => Readable {
  return (blob) => {
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    if (!blob.from) throw new Error(`internal: blob ${blob.digest} was not planned from a registry`);
    sources[blob.from.registry].getBlob(blob.from.repository, blob.digest, signal).then(
      (stream) => {
        // The attempt may have ended before the request answered: nothing will read this.
        if (out.destroyed) return void stream.destroy();
        stream.on('error', (err) => out.destroy(err));
        out.on('close', () => stream.destroy());
        stream.pipe(out);
      },
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  };
}
