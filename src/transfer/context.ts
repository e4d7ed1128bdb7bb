/**
 * What the transfer of a .bin's artifacts to registries needs, whoever runs it: the
 * appliance's import (its own two registries, an SQLite journal) or `airgap push` (a
 * site's registry, a journal file). One code path, two kinds of target.
 */
import type { Readable } from 'node:stream';
import type { BlobSource, PushTarget } from '../oci/client.js';
import type { PlannedBlob } from './plan.js';

/** Where an artifact goes: images and charts to one registry, packs to another (or the same). */
export type Destination = 'images' | 'packs';

/** The transfer's stages, in the order they run. */
export type TransferStage = 'images' | 'charts' | 'packs' | 'tags';

/** What a blob's transfer came to. */
export type BlobAction = 'pushed' | 'mounted' | 'present';

export interface TransferCounters {
  blobsPushed: number;
  blobsMounted: number;
  /** Already in the registry (HEAD), or done before a restart (journal). */
  blobsSkipped: number;
  bytesPushed: number;
  manifestsPushed: number;
  tagsPushed: number;
}

export interface TransferProgress {
  stage: TransferStage;
  bytesDone: number;
  bytesTotal: number;
  itemsDone: number;
  itemsTotal: number;
}

/**
 * Blobs done before (a run that stopped) and where a blob already is, so that a resumed
 * transfer sends no request for what it finished, and mounts rather than uploads.
 */
export interface TransferJournal {
  /** True when this transfer finished `digest` in `repository` of `destination` before. */
  has(destination: Destination, repository: string, digest: string): boolean;
  /** Repositories of `destination` known to hold `digest` (sources for a mount). */
  holders(destination: Destination, digest: string): string[];
  /**
   * Records a finished blob. It may be held until `flush`: a crash before then loses the
   * record, not the blob, which the resumed transfer then finds with one check.
   */
  record(destination: Destination, repository: string, blob: { digest: string; size: number }, action: BlobAction): void;
  /** Writes what `record` holds: at the end of each stage once the targets committed, and after a failure. */
  flush?(): void;
}

/** The logger the transfer writes to (pino's shape). */
export interface TransferLog {
  debug(data: object, message: string): void;
  child(bindings: object): TransferLog;
}

export interface TransferContext {
  /**
   * A blob's bytes, from the start (called again for each attempt of its upload): from a
   * .bin by byte offset, or from the registry a release is in. A read error must reach
   * the stream as an error event.
   */
  openBlob(blob: PlannedBlob): Readable;
  /** The same bytes by position, where the source allows it (a .bin): targets that copy without a stream use it. */
  blobSource?(blob: PlannedBlob): BlobSource;
  targets: Record<Destination, PushTarget>;
  journal: TransferJournal;
  counters: TransferCounters;
  signal: AbortSignal;
  /** Parallel blob uploads. */
  concurrency: number;
  /**
   * Parallel manifest and tag requests (default `concurrency`). Each is small and waits on
   * the registry's fsyncs rather than on bytes, so more at once than blobs pays where the
   * registry is ours.
   */
  manifestConcurrency?: number;
  log: TransferLog;
  /** Blobs already found missing by HEAD (`destination repository digest`): not asked again. */
  knownMissing?: ReadonlySet<string>;
  progress(update: TransferProgress): void;
}

export function newTransferCounters(): TransferCounters {
  return { blobsPushed: 0, blobsMounted: 0, blobsSkipped: 0, bytesPushed: 0, manifestsPushed: 0, tagsPushed: 0 };
}
