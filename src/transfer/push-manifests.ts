/**
 * Transfer stages "push manifests" and "tags" (OCI distribution-spec, "Pushing Manifests"):
 * manifests by digest, children before the index that names them, skipping those the
 * registry has; tags last, once every artifact of the release is complete, so a failed
 * import never moves a tag.
 */
import { RegistryError } from '../kit/errors.js';
import type { TransferContext, TransferStage } from './context.js';
import type { PlannedArtifact } from './plan.js';

/** Pushes every manifest of `artifacts` by digest. Throws RegistryError. */
export async function pushManifests(ctx: TransferContext, stage: TransferStage, artifacts: PlannedArtifact[]): Promise<void> {
  for (const a of artifacts) {
    const target = ctx.targets[a.registry];
    for (const m of a.manifests) {
      ctx.signal.throwIfAborted();
      if (await target.hasManifest(a.repository, m.digest)) continue;
      const digest = await target.putManifest(a.repository, m.digest, m.mediaType, m.bytes);
      if (digest && digest !== m.digest) {
        throw new RegistryError('AG_REGISTRY_PUSH', `the ${target.label} stored manifest ${m.digest} of ${a.target} as ${digest}`);
      }
      ctx.counters.manifestsPushed++;
    }
    ctx.log.debug({ stage, target: a.target }, 'manifests pushed');
  }
}

/** Points every artifact's tag at its digest, skipping tags already right. Throws RegistryError. */
export async function pushTags(ctx: TransferContext, artifacts: PlannedArtifact[]): Promise<void> {
  let itemsDone = 0;
  ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone, itemsTotal: artifacts.length });
  for (const a of artifacts) {
    ctx.signal.throwIfAborted();
    const target = ctx.targets[a.registry];
    if ((await target.tagDigest(a.repository, a.tag)) !== a.digest) {
      const top = a.manifests[a.manifests.length - 1]!;
      await target.putManifest(a.repository, a.tag, top.mediaType, top.bytes);
      ctx.counters.tagsPushed++;
    }
    itemsDone++;
    ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone, itemsTotal: artifacts.length });
  }
}

/** True when every artifact's tag already points at its digest (an installed release, intact). */
export async function tagsInPlace(ctx: Pick<TransferContext, 'targets'>, artifacts: PlannedArtifact[]): Promise<boolean> {
  for (const a of artifacts) {
    if ((await ctx.targets[a.registry].tagDigest(a.repository, a.tag)) !== a.digest) return false;
  }
  return true;
}
