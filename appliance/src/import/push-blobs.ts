/**
 * Import stage "push blobs" (OCI distribution-spec, "Push"): every config and layer blob
 * of the stage's artifacts goes to its repository, several at once. A blob is skipped when
 * this import journalled it before a restart or the registry has it (HEAD); mounted when
 * another repository of the same registry has it; otherwise streamed straight from the
 * .bin by byte offset, hashed in flight, and the registry checks the digest too. Each
 * finished blob is journalled at once.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { PayloadError } from '../../../installer/src/errors.js';
import { openEntryStream } from '../../../installer/src/reader.js';
import { journalBlob, repositoriesWithBlob, type BlobAction } from '../store/imports.js';
import { runPool, type ImportContext, type Stage } from './context.js';
import type { PlannedArtifact, PlannedBlob } from './plan.js';

interface BlobGroup {
  registry: PlannedArtifact['registry'];
  blob: PlannedBlob;
  /** Repositories that need it; the first gets the upload, the others a mount. */
  repositories: string[];
}

/** A pass-through that hashes what flows and fails at the end when it is not `digest`. */
function verifyingStream(digest: string, path: string, onBytes: (n: number) => void): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      onBytes(chunk.length);
      callback(null, chunk);
    },
    flush(callback) {
      const actual = `sha256:${hash.digest('hex')}`;
      callback(actual === digest ? null : new PayloadError('AG_ENTRY_DIGEST', `entry ${path} does not match its digest; the file is damaged`, { hint: 'copy the file again' }));
    },
  });
}

/**
 * Pushes the blobs of `artifacts` for `stage`. Throws RegistryError on a registry
 * failure, PayloadError AG_ENTRY_DIGEST when the .bin's bytes are damaged.
 */
export async function pushBlobs(ctx: ImportContext, stage: Stage, artifacts: PlannedArtifact[]): Promise<void> {
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

  const done = (g: BlobGroup, repository: string, action: BlobAction | 'journal') => {
    if (action !== 'journal') journalBlob(ctx.db, ctx.importId, { registry: g.registry, repository, digest: g.blob.digest, size: g.blob.size, action });
    if (action === 'mounted') ctx.counters.blobsMounted++;
    else if (action === 'present' || action === 'journal') ctx.counters.blobsSkipped++;
    itemsDone++;
    report();
  };

  await runPool(work, ctx.concurrency, ctx.signal, async (g) => {
    const target = ctx.targets[g.registry];
    const log = ctx.log.child({ stage, registry: g.registry, digest: g.blob.digest });
    for (const repository of g.repositories) {
      if (ctx.journal.has(`${g.registry} ${repository} ${g.blob.digest}`)) {
        bytesDone += g.blob.size;
        done(g, repository, 'journal');
        continue;
      }
      if (await target.hasBlob(repository, g.blob.digest)) {
        bytesDone += g.blob.size;
        done(g, repository, 'present');
        continue;
      }
      const sources = [...new Set([...g.repositories.filter((r) => r !== repository), ...repositoriesWithBlob(ctx.db, g.registry, g.blob.digest)])].filter((r) => r !== repository);
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
      await target.uploadBlob(
        repository,
        g.blob.digest,
        g.blob.size,
        () => {
          // A retry of the body starts over: take back what the last attempt counted.
          bytesDone -= sent;
          sent = 0;
          return openEntryStream(ctx.opened, g.blob.path).pipe(verifyingStream(g.blob.digest, g.blob.path, (n) => {
            sent += n;
            bytesDone += n;
            report();
          }));
        },
        ctx.signal,
      );
      ctx.counters.blobsPushed++;
      ctx.counters.bytesPushed += g.blob.size;
      log.debug({ repository, size: g.blob.size }, 'blob pushed');
      done(g, repository, 'pushed');
    }
  });
}
