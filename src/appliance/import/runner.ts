/**
 * The import queue and pipeline driver (docs/architecture.md, "One import"): one import at a
 * time, in order; each runs open → preflight → images → charts → packs → files → tags →
 * commit, recording every stage and every finished blob in SQLite. When the daemon stops
 * (or dies) mid-import, the import stays 'running' and the next start resumes it from its
 * journal. Domain code: it knows nothing of HTTP.
 */
import { EventEmitter } from 'node:events';
import type { Stats } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import { AirgapError, PayloadError, RegistryError } from '../../kit/errors.js';
import { isDiskFull, type SpaceReserve } from '../../kit/space-reserve.js';
import { formatBytes } from '../../kit/text.js';
import { entrySource, openEntryStream, type OpenedPayload } from '../../format/reader.js';
import type { PushTarget } from '../../oci/client.js';
import type { RegistryName, StateLayout } from '../config/state-layout.js';
import type { Db } from '../store/db.js';
import { artifactCounts, currentRelease, listArtifacts } from '../store/releases.js';
import {
  createImport,
  failImport,
  finishImport,
  getImport,
  latestImportOf,
  repositoriesWithBlob,
  markStarted,
  setIdentity,
  setStage,
  unfinishedImports,
  type ImportOptions,
  type ImportRow,
  type ImportSource,
} from '../store/imports.js';
import { commitRelease, writeReleasesJson } from './commit.js';
import { chartInstalled, installCharts, writeChartIndex } from './chart-repo.js';
import { newCounters, sqliteJournal, type ImportContext, type ImportCounters, type Stage, type StageProgress } from './context.js';
import { installFiles, publishFiles, releaseDirs } from './files.js';
import { openForImport, readHeaderForImport } from './open.js';
import { planTransfer, type PlannedArtifact, type TransferPlan } from '../../transfer/plan.js';
import { checkFreeSpace, decideVersion } from './preflight.js';
import { splitTarget } from '../../oci/reference.js';
import { pushBlobs } from '../../transfer/push-blobs.js';
import { pushManifests, pushTags, tagsInPlace } from '../../transfer/push-manifests.js';

/** A live view of one import, sent to followers. */
export interface ImportUpdate {
  importId: number;
  state: ImportRow['state'];
  stage: Stage | null;
  name: string | null;
  version: string | null;
  /** Imports ahead of this one (queued only). */
  queuePosition: number;
  bytesDone: number;
  bytesTotal: number;
  itemsDone: number;
  itemsTotal: number;
}

/** What `airgap import --json` prints (also stored as the import's result). */
export interface ImportResult extends ImportCounters {
  importId: number;
  file: string;
  name: string;
  version: string;
  status: 'imported' | 'unchanged';
  /** install | upgrade | downgrade | repair | none */
  action: string;
  previousVersion: string | null;
  signedBy: string | null;
  images: number;
  charts: number;
  packs: number;
  files: number;
  resumed: boolean;
  seconds: number;
}

export interface ImporterOptions {
  db: Db;
  log: Logger;
  layout: StateLayout;
  /** Push targets for the bundled registries, whose requests end when `signal` aborts; closed after each import. */
  targets: (signal?: AbortSignal) => Record<RegistryName, PushTarget>;
  /** Problems of the registries ('' when healthy); a non-empty list stops an import before it pushes. */
  registryProblems: () => Promise<string[]>;
  /** Accept unsigned or unknown-key files (the daemon's explicit --allow-unsigned). */
  allowUnsigned: boolean;
  /** Parallel blob uploads (default 4). */
  concurrency?: number;
  /** Released to record a failure when the disk is full; made again before each import. */
  reserve?: SpaceReserve;
  /** Removes what a failed import left in the registries' storage since a time (ms): upload sessions, empty links. */
  removeLeftoversSince?: (sinceMs: number) => Promise<number>;
  onEvent: (actor: string, kind: string, message: string, data?: Record<string, unknown>) => void;
  /** Called when an import has ended and none is queued (the daemon gives memory back then). */
  onIdle?: () => void;
}

const STAGE_OF_KIND = { image: 'images', chart: 'charts', pack: 'packs' } as const;

/** What tells whether an artifact of a release is in place: its tag, and for a chart its archive. */
type IntactArtifact = Pick<PlannedArtifact, 'registry' | 'repository' | 'tag' | 'digest'> & { kind: string };

/** Manifest and tag requests at once into the bundled registries. */
export const IMPORT_MANIFEST_LANES = 16;

/** Bytes of the plan's blobs that no import has put into their registry yet (an upper bound of what is pushed). */
function unknownBlobBytes(db: Db, plan: TransferPlan): number {
  const counted = new Set<string>();
  let bytes = 0;
  for (const a of plan.artifacts) {
    for (const b of a.blobs) {
      const key = `${a.registry} ${b.digest}`;
      if (counted.has(key)) continue;
      counted.add(key);
      if (repositoriesWithBlob(db, a.registry, b.digest).length === 0) bytes += b.size;
    }
  }
  return bytes;
}

/** An import's failure as it is recorded and shown. */
interface ImportFailure {
  code: string;
  message: string;
  hint: string;
}

/** A registry's answer that says its storage is full (distribution passes the OS error on). */
function isRegistryDiskFull(err: unknown): boolean {
  return err instanceof RegistryError && err.diskFull;
}

/** How often a running import checks that its source file is still the one it opened, ms. */
const FILE_WATCH_MS = 1000;

/** What changed about `file` since `before` (size, mtime, replaced, removed), or undefined. */
async function sourceProblem(file: string, before: Stats): Promise<string | undefined> {
  const now = await stat(file).catch(() => undefined);
  if (!now) return 'was removed';
  if (now.ino !== before.ino || now.dev !== before.dev) return 'was replaced';
  if (now.size !== before.size) return `changed size (${before.size} → ${now.size} bytes)`;
  if (now.mtimeMs !== before.mtimeMs) return 'was modified';
  return undefined;
}

/** Polls `file` every `everyMs` and calls `onChange` once with what changed. The caller clears the timer. */
function watchSource(file: string, before: Stats, everyMs: number, onChange: (problem: string) => void): NodeJS.Timeout {
  const timer: NodeJS.Timeout = setInterval(() => {
    void sourceProblem(file, before).then((problem) => {
      if (!problem) return;
      clearInterval(timer);
      onChange(problem);
    });
  }, everyMs);
  timer.unref();
  return timer;
}

/**
 * After a failure in the tags stage or later: points every tag the current release owns
 * (and this plan touched) back at the current release's digest. Returns true when all
 * were restored.
 */
async function restoreTags(db: Db, targets: Record<RegistryName, PushTarget>, plan: TransferPlan): Promise<boolean> {
  const current = currentRelease(db);
  if (!current) return true;
  const owned = new Map(listArtifacts(db, { version: current.version, files: false }).map((a) => [a.target, a.digest]));
  for (const a of plan.artifacts) {
    const digest = owned.get(a.target);
    if (!digest || digest === a.digest) continue;
    const target = targets[a.registry];
    if ((await target.tagDigest(a.repository, a.tag)) !== digest) await target.retag(a.repository, a.tag, digest);
  }
  return true;
}

export class Importer extends EventEmitter {
  /** Failures the database could not take (a full disk), by import id. */
  private readonly unrecorded = new Map<number, ImportFailure>();
  private readonly queue: number[] = [];
  private running: { id: number; abort: AbortController; done: Promise<void> } | undefined;
  /** Work that must not overlap an import (deleting a release, garbage collection): imports wait for it. */
  private maintenance: Promise<void> | undefined;
  private readonly live = new Map<number, ImportUpdate>();
  private readonly lastEmit = new Map<number, number>();
  private closing = false;

  constructor(private readonly options: ImporterOptions) {
    super();
    this.setMaxListeners(0);
  }

  /** Queues an import of `file` (an absolute path the daemon can read). Returns its row. */
  enqueue(job: { file: string; source: ImportSource; actor: string; options: ImportOptions }): ImportRow {
    const row = createImport(this.options.db, job);
    this.options.onEvent(job.actor, 'import.queued', `queued ${job.file}`, { importId: row.id, source: job.source });
    this.queue.push(row.id);
    this.setLive(row.id, { state: 'queued' });
    queueMicrotask(() => void this.pump());
    return row;
  }

  /** Queues the imports a stopped daemon left unfinished (call once, at start). */
  resumeUnfinished(): number {
    const rows = unfinishedImports(this.options.db);
    for (const row of rows) {
      this.queue.push(row.id);
      this.setLive(row.id, { state: 'queued' });
    }
    if (rows.length) queueMicrotask(() => void this.pump());
    return rows.length;
  }

  /** The import's row (state, error, result). */
  get(id: number): ImportRow | undefined {
    return getImport(this.options.db, id);
  }

  /** The newest import of `file` (the inbox asks after a restart). */
  latestOf(file: string): ImportRow | undefined {
    return latestImportOf(this.options.db, file);
  }

  /** The live view of a queued or running import; undefined once it is finished. */
  snapshot(id: number): ImportUpdate | undefined {
    const update = this.live.get(id);
    if (!update) return undefined;
    return { ...update, queuePosition: update.state === 'queued' ? this.queue.indexOf(id) + (this.running ? 1 : 0) : 0 };
  }

  /**
   * Cancels import `id`: a queued one leaves the queue, a running one stops where it is
   * (its failure is recorded as AG_IMPORT_CANCELLED; tags it moved are put back, as after
   * any failure). Resolves the row once the import has ended, and whether this call
   * cancelled it (false for an import that had already ended); undefined when there is
   * no such import.
   */
  async cancel(id: number, actor: string): Promise<{ import: ImportRow; cancelled: boolean } | undefined> {
    const row = getImport(this.options.db, id);
    if (!row) return undefined;
    const cancelled = new AirgapError('AG_IMPORT_CANCELLED', `import ${id} was cancelled by ${actor}`, {
      hint: 'import the file again when you want it; the release that was current is still current',
    });
    const queued = this.queue.indexOf(id);
    if (queued !== -1) {
      this.queue.splice(queued, 1);
      this.live.delete(id);
      await this.recordFailure(id, { code: cancelled.code, message: cancelled.message, hint: cancelled.hint! }, this.options.log.child({ importId: id }));
      this.options.onEvent(actor, 'import.cancelled', cancelled.message, { importId: id });
      this.emit('finished', getImport(this.options.db, id));
      for (const other of this.queue) this.emit('update', this.snapshot(other));
      return { import: getImport(this.options.db, id)!, cancelled: true };
    }
    if (this.running?.id === id) {
      this.options.onEvent(actor, 'import.cancelled', cancelled.message, { importId: id });
      this.running.abort.abort(cancelled);
      await this.running.done;
      return { import: getImport(this.options.db, id)!, cancelled: true };
    }
    return { import: row, cancelled: false };
  }

  /** Stops taking imports and interrupts the running one, which stays 'running' for the next start. */
  async close(): Promise<void> {
    this.closing = true;
    this.queue.length = 0;
    if (this.running) {
      this.running.abort.abort(new Error('the daemon is stopping'));
      await this.running.done;
    }
    // A delete or GC under way ends first: it is pending in the database if it cannot.
    while (this.maintenance) await this.maintenance;
  }

  private setLive(id: number, patch: Partial<ImportUpdate>): void {
    const base: ImportUpdate = this.live.get(id) ?? { importId: id, state: 'queued', stage: null, name: null, version: null, queuePosition: 0, bytesDone: 0, bytesTotal: 0, itemsDone: 0, itemsTotal: 0 };
    const next = { ...base, ...patch };
    this.live.set(id, next);
    // Followers get every change of state or stage and the end of a stage, and byte counts
    // at most every 200 ms: a multi-GB import must not flood them.
    const now = Date.now();
    const milestone = next.state !== base.state || next.stage !== base.stage || next.bytesDone === next.bytesTotal || next.itemsDone === next.itemsTotal;
    if (!milestone && now - (this.lastEmit.get(id) ?? 0) < 200) return;
    this.lastEmit.set(id, now);
    this.emit('update', this.snapshot(id));
  }

  /**
   * Runs `work` with no import running: waits for the running one to end, keeps queued
   * ones waiting meanwhile, then lets them go. One at a time. Returns what `work` returns.
   */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.maintenance) await this.maintenance;
    if (this.closing) throw new AirgapError('AG_DAEMON_DOWN', 'the daemon is stopping', { hint: 'run the command again once it has started' });
    let release!: () => void;
    this.maintenance = new Promise<void>((resolve) => (release = resolve));
    try {
      if (this.running) await this.running.done;
      return await work();
    } finally {
      this.maintenance = undefined;
      release();
      void this.pump();
    }
  }

  private async pump(): Promise<void> {
    if (this.running || this.closing || this.maintenance) return;
    const id = this.queue.shift();
    if (id === undefined) return;
    const abort = new AbortController();
    const done = this.run(id, abort.signal)
      // run() records its own failures; anything past that is logged, never a daemon crash.
      .catch((err: unknown) => this.options.log.error({ err, importId: id }, 'the import runner failed'))
      .finally(() => {
        this.running = undefined;
        if (!this.queue.length) this.options.onIdle?.();
        void this.pump();
      });
    this.running = { id, abort, done };
    for (const queued of this.queue) this.emit('update', this.snapshot(queued));
  }

  private async run(id: number, signal: AbortSignal): Promise<void> {
    const { db, layout } = this.options;
    const row = getImport(db, id);
    if (!row) return;
    const resumed = row.state === 'running';
    const started = Date.now();
    const log = this.options.log.child({ importId: id });
    let opened: OpenedPayload | undefined;
    let targets: Record<RegistryName, PushTarget> | undefined;
    let stage: Stage = 'open';
    let tagsTouched = false;
    let committed = false;
    let plan: TransferPlan | undefined;
    // The stages stop on the daemon's signal or when the source file changes under them.
    const local = new AbortController();
    const onStop = () => local.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    let changed: PayloadError | undefined;
    let watch: NodeJS.Timeout | undefined;
    let before: Stats | undefined;
    const fileChanged = (problem: string) =>
      new PayloadError('AG_FILE_CHANGED', `${row.file} ${problem} while it was being imported`, {
        hint: 'let the copy finish (or stop whatever writes the file), then import it again; nothing of it was made current',
      });
    const enter = (s: Stage) => {
      if (changed) throw changed;
      if (local.signal.aborted) throw local.signal.reason;
      stage = s;
      setStage(db, id, s);
      this.setLive(id, { state: 'running', stage: s, bytesDone: 0, bytesTotal: 0, itemsDone: 0, itemsTotal: 0 });
      log.info({ stage: s }, `stage ${s}`);
    };
    try {
      await this.options.reserve?.ensure();
      markStarted(db, id, resumed);
      this.options.onEvent(row.actor, resumed ? 'import.resumed' : 'import.started', `${resumed ? 'resumed' : 'started'} the import of ${row.file}`, { importId: id });
      enter('open');
      before = await stat(row.file);
      // The current release again, whole: known from its header and signed TOC alone,
      // whatever it holds (no TOC parse, no tar index, no manifest read).
      if (!resumed && (await this.finishIfUnchanged(row, started, log))) return;
      opened = await openForImport(row.file, layout.trustedKeysDir, this.options.allowUnsigned);
      watch = watchSource(row.file, before, FILE_WATCH_MS, (problem) => {
        changed ??= fileChanged(problem);
        log.warn({ problem }, 'the source file changed; stopping the import');
        local.abort(changed);
      });
      const { toc, header } = opened;
      setIdentity(db, id, { name: toc.name, version: toc.version, payloadSha256: header.payloadSha256 });
      this.setLive(id, { name: toc.name, version: toc.version });
      plan = await planTransfer(opened);

      enter('preflight');
      const decision = decideVersion(db, opened, row.options.allowDowngrade === true);
      const problems = await this.options.registryProblems();
      if (problems.length) {
        throw new AirgapError('AG_REGISTRY_DOWN', `the registries are not ready: ${problems.join('; ')}`, { hint: "check 'airgap status' and the daemon log, then import again" });
      }
      targets = this.options.targets(local.signal);
      const ctx: ImportContext = {
        db,
        log,
        importId: id,
        opened,
        openBlob: (blob) => openEntryStream(opened!, blob.path),
        blobSource: (blob) => entrySource(opened!, blob.path),
        plan,
        targets,
        journal: sqliteJournal(db, id),
        counters: newCounters(),
        signal: local.signal,
        concurrency: this.options.concurrency ?? 4,
        // Manifests and tags wait on the bundled registry's fsyncs, not on bytes (the
        // fleet's clients keep as many sockets).
        manifestConcurrency: IMPORT_MANIFEST_LANES,
        progress: (p: StageProgress) => this.setLive(id, { ...p, state: 'running' }),
      };
      const summary = (status: ImportResult['status'], action: string): ImportResult => ({
        importId: id,
        file: row.file,
        name: toc.name,
        version: toc.version,
        status,
        action,
        previousVersion: decision.current?.version ?? null,
        signedBy: opened!.signature.status === 'verified' ? opened!.signature.keyId : null,
        images: toc.images.length,
        charts: toc.charts.length,
        packs: toc.packs.length,
        files: toc.files.length,
        ...ctx.counters,
        resumed: resumed || row.resumed > 0,
        seconds: Math.round((Date.now() - started) / 10) / 100,
      });

      if (decision.action === 'same' && !decision.existing?.needsReimport && (await this.releaseIntact(ctx.targets, plan.artifacts, toc.version, plan.files.length > 0))) {
        const result = summary('unchanged', 'none');
        finishImport(db, id, 'unchanged', result);
        this.options.onEvent(row.actor, 'import.unchanged', `${toc.name} ${toc.version} is already on the box; nothing pushed`, { importId: id });
        return;
      }
      const repair = decision.action === 'same';
      await checkFreeSpace([
        { dir: layout.registriesDir, bytes: unknownBlobBytes(db, plan), what: 'images, charts and packs' },
        { dir: layout.repoDir, bytes: plan.fileBytes, what: 'files' },
      ]);

      for (const kind of ['image', 'chart', 'pack'] as const) {
        const artifacts = plan.artifacts.filter((a) => a.kind === kind);
        enter(STAGE_OF_KIND[kind]);
        await pushBlobs(ctx, STAGE_OF_KIND[kind], artifacts);
        await pushManifests(ctx, STAGE_OF_KIND[kind], artifacts);
      }
      enter('files');
      await installFiles(ctx, layout.repoDir, toc.version);
      await installCharts(ctx, layout.chartsDir);
      enter('tags');
      tagsTouched = true;
      await pushTags(ctx, plan.artifacts);
      enter('commit');
      await publishFiles(layout.repoDir, toc.version, id);
      const action = repair ? 'repair' : decision.action;
      const result = summary('imported', action);
      commitRelease(db, { importId: id, opened, plan, makeCurrent: !repair, alreadyRecorded: decision.existing !== undefined, result });
      committed = true;
      this.options.onEvent(row.actor, 'import.finished', `${action} of ${toc.name} ${toc.version}: ${result.blobsPushed} blobs pushed (${result.bytesPushed} bytes), ${result.blobsSkipped} skipped`, {
        ...result,
      });
      await writeReleasesJson(db, layout.repoDir).catch((err: unknown) => {
        // The release is committed; the list is rewritten at the next start or import.
        log.error({ err }, 'could not rewrite releases.json');
        this.options.onEvent('daemon', 'repo.releases_json_failed', `could not rewrite releases.json: ${(err as Error).message}`);
      });
      await writeChartIndex(db, layout.chartsDir).catch((err: unknown) => {
        // The release is committed; the chart index is rewritten at the next start or import.
        log.error({ err }, 'could not rewrite the chart index');
        this.options.onEvent('daemon', 'repo.chart_index_failed', `could not rewrite charts/index.yaml: ${(err as Error).message}`);
      });
    } catch (err) {
      if (this.closing && signal.aborted) {
        log.warn({ stage }, 'import interrupted by the daemon stopping; it resumes at the next start');
        return;
      }
      // A damaged read may come before the watcher's next look: the changed file is the cause.
      if (!changed && before && err instanceof PayloadError) {
        const problem = await sourceProblem(row.file, before);
        if (problem) changed = fileChanged(problem);
      }
      const cancelled = signal.aborted && signal.reason instanceof AirgapError && signal.reason.code === 'AG_IMPORT_CANCELLED' ? signal.reason : undefined;
      const e = cancelled ?? changed ?? (isDiskFull(err) || isRegistryDiskFull(err) ? await this.diskFull(err, stage) : err instanceof AirgapError ? err : undefined);
      const defaultHint =
        e instanceof PayloadError
          ? "this file cannot be imported: get a good copy from the build side (check it there with 'sh FILE --check'); nothing changed on the box"
          : "nothing changed on the box; see 'airgap status' and the daemon log, then import again";
      const failure: ImportFailure = e
        ? { code: e.code, message: e.message, hint: e.hint ?? defaultHint }
        : { code: 'AG_IMPORT_FAILED', message: `the import failed in stage ${stage}: ${(err as Error).message}`, hint: 'see the daemon log; the earlier release is still current' };
      if (!e) log.error({ err, stage }, 'import failed');
      if (committed) {
        log.error({ err }, 'failure after the commit; the release is imported');
        return;
      }
      if (tagsTouched && targets && plan) {
        // Tags may have moved: point those of the current release back where they were.
        // Fresh targets: those of the import end with its signal, which may have fired.
        const restoreTargets = this.options.targets();
        const restored = await restoreTags(db, restoreTargets, plan)
          .catch((restoreErr: unknown) => {
            log.error({ err: restoreErr }, 'could not restore the tags of the current release');
            return false;
          })
          .finally(() => Object.values(restoreTargets).forEach((t) => t.close()));
        failure.hint = restored
          ? `${failure.hint}; the tags of the current release were restored (new tags of this release may remain)`
          : `${failure.hint}; WARNING: some tags may point at this release's images: import again to finish, or re-import the current release`;
      }
      const leftovers = await this.options.removeLeftoversSince?.(started).catch(() => 0);
      if (leftovers) log.info({ leftovers }, 'removed the upload sessions and empty links the failed import left');
      await this.recordFailure(id, failure, log);
      this.options.onEvent(row.actor, 'import.failed', `import of ${row.file} failed in stage ${stage}: ${failure.message}`, { importId: id, stage, code: failure.code });
    } finally {
      clearInterval(watch);
      signal.removeEventListener('abort', onStop);
      this.live.delete(id);
      this.lastEmit.delete(id);
      for (const t of Object.values(targets ?? {})) t.close();
      await opened?.close();
      const final = getImport(db, id);
      const unrecorded = this.unrecorded.get(id);
      this.emit('finished', final && unrecorded ? { ...final, state: 'failed', error: unrecorded } : final);
    }
  }

  /**
   * Marks import `id` failed. With the disk full, SQLite cannot write: the reserve is
   * released and the write tried again; if it still fails, the failure is kept in memory
   * (followers get it) and logged. Never throws.
   */
  private async recordFailure(id: number, failure: ImportFailure, log: Logger): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        failImport(this.options.db, id, failure);
        this.unrecorded.delete(id);
        return;
      } catch (err) {
        if (attempt === 0 && isDiskFull(err) && (await this.options.reserve?.release())) {
          log.warn('the disk is full: released the space reserve to record the failure');
          continue;
        }
        log.error({ err, failure }, 'could not record the failure of the import; it is kept in memory');
        this.unrecorded.set(id, failure);
        return;
      }
    }
  }

  /** The one sentence for a full disk: which volume, how much is free, what to do. */
  private async diskFull(cause: unknown, stage: Stage): Promise<AirgapError> {
    const root = this.options.layout.root;
    const free = await statfs(root).then((fs) => fs.bavail * fs.bsize, () => undefined);
    return new AirgapError('AG_NO_SPACE', `the disk of ${root} is full${free === undefined ? '' : ` (${formatBytes(free)} free)`} in stage ${stage}`, {
      cause,
      hint: 'free space on that volume (old files under repo/, other data), then import the same file again: what was pushed is kept and not sent twice',
    });
  }

  /**
   * The re-import of the current release, decided before the .bin is opened: its header's
   * TOC and payload digests are the current release's, the TOC's digest and signature check
   * (readHeaderForImport), and every tag, chart and the files folder of that release are in
   * place (from its records, not from the file). Then the import ends `unchanged` and this
   * returns true; otherwise false, and the import goes the whole way. Nothing past the TOC
   * is read here, so a copy damaged after its TOC is found `unchanged` too: nothing of it is
   * used ('sh FILE --check' or 'airgap inspect' checks a file whole). Never throws.
   */
  private async finishIfUnchanged(row: ImportRow, started: number, log: Logger): Promise<boolean> {
    const { db, layout } = this.options;
    const current = currentRelease(db);
    if (!current || current.needsReimport) return false;
    let targets: Record<RegistryName, PushTarget> | undefined;
    try {
      const signed = await readHeaderForImport(row.file, layout.trustedKeysDir, this.options.allowUnsigned);
      const header = signed?.header;
      if (!signed || !header || header.tocSha256 !== current.tocSha256 || header.payloadSha256 !== current.payloadSha256 || header.version !== current.version || header.name !== current.name) return false;
      if ((await this.options.registryProblems()).length) return false;
      setIdentity(db, row.id, { name: header.name, version: header.version, payloadSha256: header.payloadSha256 });
      this.setLive(row.id, { name: header.name, version: header.version, stage: 'preflight' });
      setStage(db, row.id, 'preflight');
      const artifacts: IntactArtifact[] = [];
      for (const a of listArtifacts(db, { version: current.version, files: false })) {
        const split = splitTarget(a.target);
        if (!split) return false;
        artifacts.push({ kind: a.kind, registry: a.kind === 'pack' ? 'packs' : 'images', ...split, digest: a.digest });
      }
      const counts = artifactCounts(db, current.version);
      targets = this.options.targets();
      if (!(await this.releaseIntact(targets, artifacts, current.version, counts.file > 0))) return false;
      const result: ImportResult = {
        importId: row.id,
        file: row.file,
        name: header.name,
        version: header.version,
        status: 'unchanged',
        action: 'none',
        previousVersion: current.version,
        signedBy: signed.signature.status === 'verified' ? signed.signature.keyId : null,
        images: counts.image,
        charts: counts.chart,
        packs: counts.pack,
        files: counts.file,
        ...newCounters(),
        resumed: false,
        seconds: Math.round((Date.now() - started) / 10) / 100,
      };
      finishImport(db, row.id, 'unchanged', result);
      this.options.onEvent(row.actor, 'import.unchanged', `${header.name} ${header.version} is already on the box; nothing pushed`, { importId: row.id });
      return true;
    } catch (err) {
      log.debug({ err }, 'not a plain re-import; the whole import decides');
      return false;
    } finally {
      for (const target of Object.values(targets ?? {})) target.close();
    }
  }

  /** For a release already recorded: every tag (16 at once) and chart in place, and its files folder there when it has files. */
  private async releaseIntact(targets: Record<RegistryName, PushTarget>, artifacts: IntactArtifact[], version: string, hasFiles: boolean): Promise<boolean> {
    if (!(await tagsInPlace({ targets }, artifacts))) return false;
    // Its charts in the classic repository too: a release imported before there was one is repaired.
    for (const a of artifacts) if (a.kind === 'chart' && !(await chartInstalled(this.options.layout.chartsDir, a.digest))) return false;
    if (!hasFiles) return true;
    return stat(releaseDirs(this.options.layout.repoDir, version).final).then((s) => s.isDirectory(), () => false);
  }
}

