/** What every import stage receives: the transfer's context, plus the box's database, plan and files. */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { journalBlobs, journalOf, repositoriesWithBlob, type JournalEntry } from '../store/imports.js';
import { newTransferCounters, type TransferContext, type TransferCounters, type TransferJournal } from '../../transfer/context.js';
import type { TransferPlan } from '../../transfer/plan.js';
import type { OpenedPayload } from '../../format/reader.js';

/** Stages in the order they run; the CLI prints one line per stage. */
export const STAGES = ['open', 'preflight', 'images', 'charts', 'packs', 'files', 'tags', 'commit'] as const;
export type Stage = (typeof STAGES)[number];

export interface ImportCounters extends TransferCounters {
  filesWritten: number;
  filesSkipped: number;
}

export interface StageProgress {
  stage: Stage;
  bytesDone: number;
  bytesTotal: number;
  itemsDone: number;
  itemsTotal: number;
}

export interface ImportContext extends TransferContext {
  /** The .bin being imported: blobs and files are read from it by byte offset. */
  opened: OpenedPayload;
  db: Db;
  log: Logger;
  importId: number;
  plan: TransferPlan;
  counters: ImportCounters;
  progress(update: StageProgress): void;
}

export function newCounters(): ImportCounters {
  return { ...newTransferCounters(), filesWritten: 0, filesSkipped: 0 };
}

/**
 * The import's journal in SQLite (`import_blobs`, ADR 0003): blobs this import finished
 * before a restart are skipped without a request; blobs any import put in a repository of
 * the same registry are mount sources. Records are held until `flush` writes them in one
 * transaction, at the end of each stage (after the target put its blobs in place) or after
 * a failure: a record lost in a crash costs one check on resume (ADR 0003).
 */
export function sqliteJournal(db: Db, importId: number): TransferJournal & { flush(): void } {
  const done = journalOf(db, importId);
  let pending: JournalEntry[] = [];
  const flush = () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    journalBlobs(db, importId, batch);
  };
  return {
    has: (destination, repository, digest) => done.has(`${destination} ${repository} ${digest}`),
    holders: (destination, digest) => {
      const held = pending.filter((e) => e.registry === destination && e.digest === digest).map((e) => e.repository);
      return [...new Set([...repositoriesWithBlob(db, destination, digest), ...held])];
    },
    record: (destination, repository, blob, action) => {
      pending.push({ registry: destination, repository, digest: blob.digest, size: blob.size, action });
    },
    flush,
  };
}
