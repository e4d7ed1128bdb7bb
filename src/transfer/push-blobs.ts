/**
 * Transfer stage "push blobs" (OCI distribution-spec, "Push"): every config and layer blob
 * of the stage's artifacts goes to its repository, several at once. A blob is skipped when
 * this transfer journalled it before a restart or the registry has it (HEAD); mounted when
 * another repository of the same registry has it; otherwise streamed straight from the
 * .bin by byte offset while the registry hashes it in flight and checks the digest (or, for
 * a target that writes the registry's storage, copied by position and checked by it). A
 * finished blob is journalled at once, or, for a target that defers its writes, once a
 * commit has put it in place.
 */
import { Transform, type Readable } from 'node:stream';
import { PayloadError, RegistryError } from '../kit/errors.js';
import type { BlobSource, PushTarget } from '../oci/client.js';
import { runPool } from '../kit/pool.js';
import type { BlobAction, TransferContext, TransferStage } from './context.js';
import type { PlannedArtifact, PlannedBlob } from './plan.js';

/** Bytes of finished uploads after which they are committed and journalled. */
const COMMIT_BYTES = 256 * 1024 * 1024;
/** Time after which finished blobs are committed and journalled, ms. */
const COMMIT_MS = 2000;

interface BlobGroup {
  registry: PlannedArtifact['registry'];
  blob: PlannedBlob;
  /** Repositories that need it; the first gets the upload, the others a mount. */
  repositories: string[];
}

/**
 * A pass-through that counts what flows. The blob is not hashed here: the registry
 * computes its digest in flight and refuses a PUT whose bytes do not match (OCI
 * distribution-spec, "Pushing a blob monolithically"), so a second sha256 of every byte
 * would only take CPU from the registry (the bench measured 17% on 2 GB).
 */
function countingStream(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

/**
 * Uploads one blob; the registry's digest refusal (DIGEST_INVALID) means the .bin's
 * bytes are damaged, and says so as a PayloadError.
 */
async function uploadChecked(target: PushTarget, repository: string, blob: PlannedBlob, body: () => Readable, signal: AbortSignal, source?: BlobSource): Promise<void> {
  try {
    await target.uploadBlob(repository, blob.digest, blob.size, body, signal, source);
  } catch (err) {
    if (err instanceof RegistryError && (err.registryCode === 'DIGEST_INVALID' || /DIGEST_INVALID|digest did not match/i.test(err.message))) {
      if (blob.from) {
        // Read from a registry (push --release): the source registry gave other bytes.
        throw new RegistryError('AG_DIGEST_MISMATCH', `blob ${blob.digest} of ${blob.from.repository} in the ${blob.from.registry} registry does not match its digest (the destination refused it)`, { cause: err, hint: 'import the release again to repair it (airgap import FILE.bin)' });
      }
      throw new PayloadError('AG_ENTRY_DIGEST', `entry ${blob.path} does not match its digest (the registry refused it); the file is damaged`, { cause: err, hint: 'copy the file again' });
    }
    throw err;
  }
}

/**
 * Pushes the blobs of `artifacts` for `stage`. Throws RegistryError on a registry
 * failure, PayloadError AG_ENTRY_DIGEST when the .bin's bytes are damaged.
 */
export async function pushBlobs(ctx: TransferContext, stage: TransferStage, artifacts: PlannedArtifact[]): Promise<void> {
  const groups = new Map<string, BlobGroup>();
  for (const a of artifacts) {
    for (const blob of a.blobs) {
      const key = `${a.registry} ${blob.digest}`;
      const group = groups.get(key) ?? { registry: a.registry, blob, repositories: [] };
      if (!group.repositories.includes(a.repository)) group.repositories.push(a.repository);
      groups.set(key, group);
    }
  }
  // Largest first, so the lanes finish together.
  const work = [...groups.values()].sort((a, b) => b.blob.size - a.blob.size);
  const bytesTotal = work.reduce((n, g) => n + g.blob.size * g.repositories.length, 0);
  const itemsTotal = work.reduce((n, g) => n + g.repositories.length, 0);
  let bytesDone = 0;
  let itemsDone = 0;
  const report = () => ctx.progress({ stage, bytesDone, bytesTotal, itemsDone, itemsTotal });
  report();

  // Finished blobs are journalled in commits: a target that defers its writes puts them
  // in place first, so the journal never names a blob that is not there, and no manifest
  // names one before. A commit runs every COMMIT_BYTES or COMMIT_MS of finished blobs (in
  // the background: the lanes go on), and at the end of the stage. What a crash loses is
  // what finished since the last commit.
  const registries = [...new Set(work.map((g) => g.registry))];
  const finished: Array<[BlobGroup, string, BlobAction]> = [];
  let chain: Promise<unknown> = Promise.resolve();
  let sinceBytes = 0;
  let sinceAt = Date.now();
  let background: { error: unknown } | undefined;
  const commit = (signal?: AbortSignal): Promise<void> => {
    sinceBytes = 0;
    sinceAt = Date.now();
    const run = chain.then(async () => {
      // Taken in the same turn as the targets' own snapshots (commit() takes its blobs
      // synchronously): every blob of this batch is in the commit that precedes its record.
      const batch = finished.splice(0);
      const commits = registries.map((registry) => ctx.targets[registry].commit?.(signal));
      for (const c of commits) await c;
      for (const [g, repository, action] of batch) ctx.journal.record(g.registry, repository, g.blob, action);
      ctx.journal.flush?.();
    });
    chain = run.catch(() => {});
    return run;
  };

  // Targets that write at once (a registry's API) journal each blob as it finishes.
  const deferring = registries.some((registry) => ctx.targets[registry].commit !== undefined);
  const done = (g: BlobGroup, repository: string, action: BlobAction | 'journal') => {
    if (action !== 'journal' && !deferring) {
      ctx.journal.record(g.registry, repository, g.blob, action);
      ctx.journal.flush?.();
    } else if (action !== 'journal') {
      finished.push([g, repository, action]);
      sinceBytes += action === 'pushed' ? g.blob.size : 0;
      if (sinceBytes >= COMMIT_BYTES || Date.now() - sinceAt >= COMMIT_MS) {
        commit(ctx.signal).catch((error: unknown) => (background ??= { error }));
      }
    }
    if (action === 'mounted') ctx.counters.blobsMounted++;
    else if (action === 'present' || action === 'journal') ctx.counters.blobsSkipped++;
    itemsDone++;
    report();
  };

  try {
    await runPool(work, ctx.concurrency, ctx.signal, async (g) => pushGroup(g));
    await commit(ctx.signal);
    if (background) throw background.error;
  } catch (err) {
    // What was finished is kept for the resume (without the stage's signal, which may be
    // what stopped it). If that fails too (a full disk), the resume checks those blobs again.
    await commit().catch(() => {});
    throw err;
  }

  async function pushGroup(g: BlobGroup): Promise<void> {
    if (background) throw background.error;
    const target = ctx.targets[g.registry];
    const log = ctx.log.child({ stage, registry: g.registry, digest: g.blob.digest });
    for (const repository of g.repositories) {
      if (ctx.journal.has(g.registry, repository, g.blob.digest)) {
        bytesDone += g.blob.size;
        done(g, repository, 'journal');
        continue;
      }
      if (!ctx.knownMissing?.has(`${g.registry} ${repository} ${g.blob.digest}`) && (await target.hasBlob(repository, g.blob.digest))) {
        bytesDone += g.blob.size;
        done(g, repository, 'present');
        continue;
      }
      const sources = [...new Set([...g.repositories.filter((r) => r !== repository), ...ctx.journal.holders(g.registry, g.blob.digest)])].filter((r) => r !== repository);
      let mounted = false;
      for (const from of sources.slice(0, 3)) {
        if (await target.mountBlob(repository, g.blob.digest, from)) {
          mounted = true;
          break;
        }
      }
      if (mounted) {
        bytesDone += g.blob.size;
        log.debug({ repository }, 'blob mounted');
        done(g, repository, 'mounted');
        continue;
      }
      let sent = 0;
      /** The blob by position, counted as it is read (a target that uses it reads it once). */
      const positional = (): BlobSource | undefined => {
        const source = ctx.blobSource?.(g.blob);
        if (!source) return undefined;
        return {
          size: source.size,
          read: async (buffer, position, length) => {
            if (position === 0) {
              bytesDone -= sent;
              sent = 0;
            }
            const n = await source.read(buffer, position, length);
            sent += n;
            bytesDone += n;
            report();
            return n;
          },
        };
      };
      await uploadChecked(
        target,
        repository,
        g.blob,
        () => {
          // A retry of the body starts over: take back what the last attempt counted.
          bytesDone -= sent;
          sent = 0;
          const counter = countingStream((n) => {
            sent += n;
            bytesDone += n;
            report();
          });
          // pipe() does not pass errors on: a read error of the .bin (truncated, gone)
          // must fail the upload at once, not leave the request waiting for bytes.
          const source = ctx.openBlob(g.blob).on('error', (err) => counter.destroy(err));
          counter.on('close', () => source.destroy()); // an attempt that failed leaves no read behind
          return source.pipe(counter);
        },
        ctx.signal,
        positional(),
      );
      ctx.counters.blobsPushed++;
      ctx.counters.bytesPushed += g.blob.size;
      log.debug({ repository, size: g.blob.size }, 'blob pushed');
      done(g, repository, 'pushed');
    }
  }
}
