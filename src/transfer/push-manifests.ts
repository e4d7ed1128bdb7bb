/**
 * Transfer stages "push manifests" and "tags" (OCI distribution-spec, "Pushing Manifests"):
 * manifests by digest, children before the index that names them, skipping those the
 * registry has, several artifacts at once; tags last, once every artifact of the release is complete, so a failed
 * import never moves a tag.
 */
import { RegistryError } from '../kit/errors.js';
import { runPool } from '../kit/pool.js';
import type { TransferContext, TransferStage } from './context.js';
import type { PlannedArtifact } from './plan.js';

/**
 * Pushes every manifest of `artifacts` by digest, `ctx.manifestConcurrency` (else
 * `ctx.concurrency`) artifacts at once;
 * within an artifact children go before the index that names them. A manifest two
 * artifacts share (the same repository and digest) is checked and pushed once, and the
 * second waits for it. Throws RegistryError.
 */
export async function pushManifests(ctx: TransferContext, stage: TransferStage, artifacts: PlannedArtifact[]): Promise<void> {
  const inFlight = new Map<string, Promise<void>>();
  const pushOne = async (a: PlannedArtifact, m: PlannedArtifact['manifests'][number]) => {
    const target = ctx.targets[a.registry];
    if (await target.hasManifest(a.repository, m.digest)) return;
    const digest = await target.putManifest(a.repository, m.digest, m.mediaType, m.bytes);
    if (digest && digest !== m.digest) {
      throw new RegistryError('AG_REGISTRY_PUSH', `the ${target.label} stored manifest ${m.digest} of ${a.target} as ${digest}`);
    }
    ctx.counters.manifestsPushed++;
  };
  await runPool(artifacts, ctx.manifestConcurrency ?? ctx.concurrency, ctx.signal, async (a) => {
    for (const m of a.manifests) {
      ctx.signal.throwIfAborted();
      const key = `${a.registry} ${a.repository} ${m.digest}`;
      let pushed = inFlight.get(key);
      if (!pushed) inFlight.set(key, (pushed = pushOne(a, m)));
      await pushed;
    }
    ctx.log.debug({ stage, target: a.target }, 'manifests pushed');
  });
}

/**
 * Points every artifact's tag at its digest, `ctx.manifestConcurrency` (else
 * `ctx.concurrency`) at once, skipping tags
 * already right. Throws RegistryError (the first failure; tags in flight still finish).
 */
export async function pushTags(ctx: TransferContext, artifacts: PlannedArtifact[]): Promise<void> {
  let itemsDone = 0;
  ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone, itemsTotal: artifacts.length });
  await runPool(artifacts, ctx.manifestConcurrency ?? ctx.concurrency, ctx.signal, async (a) => {
    if ((await setTag(ctx, a)) === 'pushed') ctx.counters.tagsPushed++;
    itemsDone++;
    ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone, itemsTotal: artifacts.length });
  });
}

/**
 * Points one artifact's tag at its digest: `unchanged` when it already does, else PUTs
 * the artifact's top manifest under the tag. Throws RegistryError (an immutable tag, a
 * missing project, a registry failure).
 */
export async function setTag(ctx: Pick<TransferContext, 'targets'>, a: PlannedArtifact): Promise<'pushed' | 'unchanged'> {
  const target = ctx.targets[a.registry];
  if ((await target.tagDigest(a.repository, a.tag)) === a.digest) return 'unchanged';
  const top = a.manifests[a.manifests.length - 1]!;
  await target.putManifest(a.repository, a.tag, top.mediaType, top.bytes);
  return 'pushed';
}

/** Tag lookups at once in `tagsInPlace` (a file read each for the bundled registries, a HEAD for others). */
const TAG_CHECKS_AT_ONCE = 16;

/** True when every artifact's tag already points at its digest (an installed release, intact). */
export async function tagsInPlace(ctx: Pick<TransferContext, 'targets'>, artifacts: ReadonlyArray<Pick<PlannedArtifact, 'registry' | 'repository' | 'tag' | 'digest'>>): Promise<boolean> {
  let intact = true;
  await runPool(artifacts, TAG_CHECKS_AT_ONCE, undefined, async (a) => {
    if (intact && (await ctx.targets[a.registry].tagDigest(a.repository, a.tag)) !== a.digest) intact = false;
  });
  return intact;
}
