/** What every import stage receives: the opened file, the plan, the push targets, the journal. */
import type { Logger } from 'pino';
import type { OpenedPayload } from '../../format/reader.js';
import type { PushTarget } from '../../oci/client.js';
import type { RegistryName } from '../config/state-layout.js';
import type { Db } from '../store/db.js';
import type { JournalEntry } from '../store/imports.js';
import type { ImportPlan } from './plan.js';

/** Stages in the order they run; the CLI prints one line per stage. */
export const STAGES = ['open', 'preflight', 'images', 'charts', 'packs', 'files', 'tags', 'commit'] as const;
export type Stage = (typeof STAGES)[number];

export interface ImportCounters {
  blobsPushed: number;
  blobsMounted: number;
  /** Already in the registry (HEAD), or done before a daemon restart (journal). */
  blobsSkipped: number;
  bytesPushed: number;
  manifestsPushed: number;
  tagsPushed: number;
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

export interface ImportContext {
  db: Db;
  log: Logger;
  importId: number;
  opened: OpenedPayload;
  plan: ImportPlan;
  targets: Record<RegistryName, PushTarget>;
  /** Blobs this import finished before (a resumed import), keyed `registry repository digest`. */
  journal: Map<string, JournalEntry>;
  counters: ImportCounters;
  signal: AbortSignal;
  /** Parallel blob uploads. */
  concurrency: number;
  progress(update: StageProgress): void;
}

export function newCounters(): ImportCounters {
  return { blobsPushed: 0, blobsMounted: 0, blobsSkipped: 0, bytesPushed: 0, manifestsPushed: 0, tagsPushed: 0, filesWritten: 0, filesSkipped: 0 };
}
