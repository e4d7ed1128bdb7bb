/**
 * `airgap push`: the images, charts and packs of a verified .bin into a registry the site
 * already runs (Harbor, Quay, Artifactory, GitLab, Zot, ECR, CNCF distribution), through
 * the same transfer code as the appliance's import (src/transfer/): HEAD skip,
 * cross-repository mount, parallel lanes, blobs streamed from the .bin by byte offset,
 * manifests children first, tags last. Files are not pushed.
 *
 * Trust comes first: the TOC's digest and signature before the first request, and the
 * sha256 of every blob that may be sent before the first write request.
 */
import { createHash } from 'node:crypto';
import { AirgapError, PayloadError, RegistryError, UsageError } from '../kit/errors.js';
import { openEntryStream, openPayload, verifyEntries, verifyPayloadData, type OpenedPayload } from '../format/reader.js';
import type { PublicKeyInfo } from '../format/keys.js';
import { RegistryClient, type Credentials, type PushTarget } from '../oci/client.js';
import { targetProblem } from '../oci/reference.js';
import { newTransferCounters, type Destination, type TransferContext, type TransferLog, type TransferProgress } from '../transfer/context.js';
import { planTransfer, type PlannedArtifact, type PlannedBlob, type TransferPlan } from '../transfer/plan.js';
import { planFromRegistries, registryBlobOpener, type ReleaseArtifact } from '../transfer/plan-registry.js';
import { pushBlobs } from '../transfer/push-blobs.js';
import { pushManifests, setTag } from '../transfer/push-manifests.js';
import { runPool } from '../kit/pool.js';
import { openFileJournal } from './journal.js';

/** `REGISTRY[/PREFIX]` split: `registry.example.com:5000/mirror/platform`. */
export interface RegistryDestination {
  /** `host[:port]` */
  registry: string;
  /** Repository path prefix, no slashes at either end; '' for none. */
  prefix: string;
}

/**
 * Parses `REGISTRY[/PREFIX]` (a leading `https://` is allowed and dropped). Throws
 * UsageError when the registry is not a host[:port] or the prefix is not a repository path.
 */
export function parseDestination(text: string, flag: string): RegistryDestination {
  const bare = text.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const slash = bare.indexOf('/');
  const registry = slash === -1 ? bare : bare.slice(0, slash);
  const prefix = slash === -1 ? '' : bare.slice(slash + 1);
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(registry)) {
    throw new UsageError(`${flag} '${text}' does not start with a registry host[:port]`, { hint: `for example ${flag} registry.example.com:5000/mirror` });
  }
  if (prefix && targetProblem(`${prefix}/x:t`)) throw new UsageError(`${flag} '${text}': '${prefix}' is not a repository path (lower case letters, digits, . _ - and /)`);
  return { registry, prefix };
}

/** One image, chart or pack and what happened to it. */
export interface PushedReference {
  kind: 'image' | 'chart' | 'pack';
  /** Its target in the .bin. */
  source: string;
  /** Where it goes: `registry/prefix/repository:tag`. */
  reference: string;
  digest: string;
  outcome: 'pushed' | 'unchanged' | 'planned' | 'failed';
  error?: { code: string; message: string };
}

export interface PushReport {
  file: string;
  name: string;
  version: string;
  /** `--to` as parsed: `registry[/prefix]`. */
  target: string;
  packsTarget: string;
  status: 'pushed' | 'unchanged' | 'partial' | 'planned';
  signedBy: string | null;
  images: number;
  charts: number;
  packs: number;
  files: { count: number; pushed: false; note: string };
  blobsPushed: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesPushed: number;
  manifestsPushed: number;
  tagsPushed: number;
  /** Blobs a journal of an earlier, stopped run had finished. */
  resumedBlobs: number;
  seconds: number;
  references: PushedReference[];
  /**
   * Why the push stopped after its first write request (a registry down beyond its
   * retries, a damaged blob, a full disk); status is then `partial` and every reference
   * that did not land is `failed` with this error. Absent when it ran to the end.
   */
  error?: { code: string; message: string; hint?: string };
}

export interface PushOptions {
  file: string;
  to: RegistryDestination;
  /** Packs go here; default `to`. */
  packsTo?: RegistryDestination;
  /** Keys to verify with; a valid signature by one of them is required unless `allowUnsigned`. */
  trustedKeys: PublicKeyInfo[];
  allowUnsigned: boolean;
  /** Credentials for a registry host, or undefined (anonymous). */
  credentialsFor: (registry: string) => Credentials | undefined;
  /** PEM of a private CA the registries' certificates chain to. */
  caPem?: string;
  /** Registries (`host[:port]`) reached over plain HTTP; never a fallback. */
  insecureRegistries: string[];
  /** Repository rewrites, `OLD=NEW`: a repository equal to OLD or under OLD/ gets NEW instead. */
  registryMap: Array<[string, string]>;
  /** Parallel blob uploads (default 4). */
  jobs: number;
  /** Upload blobs larger than this in chunks of this many bytes (RegistryClientOptions.chunkSize). */
  chunkSize?: number;
  /** Plan and report, no request. */
  dryRun: boolean;
  journalDir: string;
  signal?: AbortSignal;
  /** Progress: `verify` (the whole payload read once, before any request), then each transfer stage. */
  onProgress?: (p: { stage: 'verify' | TransferProgress['stage']; bytesDone: number; bytesTotal: number }) => void;
  log?: TransferLog;
}

const QUIET_LOG: TransferLog = { debug: () => {}, child: () => QUIET_LOG };

/** Applies `--registry-map` (first match wins) and the destination's prefix. */
function destinationRepository(repository: string, to: RegistryDestination, map: Array<[string, string]>): string {
  let repo = repository;
  for (const [from, into] of map) {
    if (repo === from || repo.startsWith(`${from}/`)) {
      repo = `${into}${repo.slice(from.length)}`;
      break;
    }
  }
  return to.prefix ? `${to.prefix}/${repo}` : repo;
}

/** Opens `file` with the trust rules of `airgap push`. Throws PayloadError. */
async function openTrusted(options: PushOptions): Promise<OpenedPayload> {
  if (!options.trustedKeys.length && !options.allowUnsigned) {
    throw new PayloadError('AG_NO_TRUSTED_KEYS', `no key to verify ${options.file} with`, {
      hint: "pass the signer's public key with --key PUB.pem (or, knowing the risk, --allow-unsigned)",
    });
  }
  return openPayload(options.file, { trustedKeys: options.trustedKeys, requireSignature: !options.allowUnsigned, allowUnverified: options.allowUnsigned });
}

/** Where a push reads from: a verified .bin, or a release in the appliance's registries. */
interface PushSource {
  /** For the report: the .bin's path, or `release VERSION`. */
  file: string;
  name: string;
  version: string;
  signedBy: string | null;
  counts: { images: number; charts: number; packs: number; files: number };
  filesNote: string;
  plan: TransferPlan;
  /** Names the resume journal with the destination: the payload's sha256, or the release's. */
  journalKey: string;
  openBlob: TransferContext['openBlob'];
  /** Checks the blobs about to be sent before the first write request (a .bin: against the signed TOC). */
  checkBeforeSend(blobs: PlannedBlob[]): Promise<void>;
  /** What a dry run checks instead of sending (a .bin: every entry). */
  checkDryRun(): Promise<void>;
}

/**
 * Pushes the .bin's artifacts to the destination registries. Returns the report; a
 * reference whose tag cannot be set (tag immutability, a missing project) is `failed`
 * in it while the others still land (status `partial`). Throws PayloadError before any
 * request when the file is damaged, altered or untrusted; UsageError for bad options;
 * RegistryError when a registry fails beyond its retries.
 */
export async function pushBin(options: PushOptions): Promise<PushReport> {
  const started = Date.now();
  const opened = await openTrusted(options);
  try {
    const plan = await planTransfer(opened);
    const { toc } = opened;
    return await pushPlanned(options, started, {
      file: options.file,
      name: toc.name,
      version: toc.version,
      signedBy: opened.signature.status === 'verified' ? opened.signature.keyId : null,
      counts: { images: toc.images.length, charts: toc.charts.length, packs: toc.packs.length, files: toc.files.length },
      filesNote: 'files are not pushed to a registry; copy them from the .bin (sh FILE --target DIR)',
      plan,
      journalKey: opened.header.payloadSha256,
      openBlob: (blob) => openEntryStream(opened, blob.path),
      // Blobs the registry has (HEAD) are neither sent nor read: an upgrade reads only what changed.
      checkBeforeSend: (blobs) => verifyEntries(opened, blobs.map((b) => b.path), (p) => options.onProgress?.({ stage: 'verify', ...p })),
      checkDryRun: () => verifyPayloadData(opened, (p) => options.onProgress?.({ stage: 'verify', ...p })),
    });
  } finally {
    await opened.close();
  }
}

/** A release in the appliance's registries, as `airgap push --release` reads it (appliance/cli). */
export interface ReleaseSourceSpec {
  name: string;
  version: string;
  artifacts: ReleaseArtifact[];
  fileCount: number;
  /** The registries it is in: images and charts, packs. */
  sources: Record<Destination, RegistryClient>;
}

/**
 * Pushes a release the appliance holds (in its own registries) to the destination, as
 * pushBin does with a .bin: the same plan shape, transfer and report. Manifests are
 * checked against their digests as they are read, and the destination checks each blob's
 * digest on upload. Throws as pushBin, and RegistryError when the appliance's registries
 * lack part of the release.
 */
export async function pushRelease(options: TransferOptions, release: ReleaseSourceSpec): Promise<PushReport> {
  const started = Date.now();
  const plan = await planFromRegistries(release.sources, release.artifacts);
  const count = (kind: string) => release.artifacts.filter((a) => a.kind === kind).length;
  const digests = release.artifacts.map((a) => `${a.target}@${a.digest}`).sort().join(' ');
  return pushPlanned(options, started, {
    file: `release ${release.version}`,
    name: release.name,
    version: release.version,
    signedBy: null,
    counts: { images: count('image'), charts: count('chart'), packs: count('pack'), files: release.fileCount },
    filesNote: 'files are not pushed to a registry; they are in the repository (https://<repo-ip>/<version>/)',
    plan,
    journalKey: createHash('sha256').update(`release ${release.name} ${release.version} ${digests}`).digest('hex'),
    openBlob: registryBlobOpener(release.sources, options.signal),
    checkBeforeSend: async () => {},
    checkDryRun: async () => {},
  });
}

/** What pushBin and pushRelease share: the options that are not about the source. */
type TransferOptions = Omit<PushOptions, 'file' | 'trustedKeys' | 'allowUnsigned'>;

/**
 * The writing part of a push: blobs and manifests stage by stage, then tags last, each on
 * its own (one refused, as an immutable tag or a missing project, does not keep the
 * others from landing; it is `failed` in `report`). Throws RegistryError or PayloadError
 * when the transfer cannot go on.
 */
async function transfer(ctx: TransferContext, artifacts: PlannedArtifact[], report: PushReport): Promise<void> {
  for (const [kind, stage] of [['image', 'images'], ['chart', 'charts'], ['pack', 'packs']] as const) {
    const ofKind = artifacts.filter((a) => a.kind === kind);
    if (!ofKind.length) continue;
    await pushBlobs(ctx, stage, ofKind);
    await pushManifests(ctx, stage, ofKind);
  }
  let tagsDone = 0;
  await runPool([...artifacts.entries()], ctx.concurrency, ctx.signal, async ([i, a]) => {
    const ref = report.references[i]!;
    try {
      ref.outcome = await setTag(ctx, a);
      if (ref.outcome === 'pushed') ctx.counters.tagsPushed++;
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      ref.outcome = 'failed';
      ref.error = { code: err.code, message: err.message };
    }
    ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone: ++tagsDone, itemsTotal: artifacts.length });
  });
}

/** Maps the plan to the destination, then HEAD checks, the source's check, transfer, tags and the report. */
async function pushPlanned(options: TransferOptions, started: number, source: PushSource): Promise<PushReport> {
  const targets: Partial<Record<Destination, RegistryClient>> = {};
  try {
    const plan = source.plan;
    const packsTo = options.packsTo ?? options.to;
    const destinationOf = (a: PlannedArtifact) => (a.registry === 'packs' ? packsTo : options.to);
    const artifacts = plan.artifacts.map((a) => {
      const to = destinationOf(a);
      const repository = destinationRepository(a.repository, to, options.registryMap);
      const problem = targetProblem(`${repository}:${a.tag}`);
      if (problem) throw new UsageError(`${a.target} would go to ${to.registry}/${repository}:${a.tag}, which ${problem}`, { hint: 'choose another prefix or --registry-map' });
      return { ...a, repository, target: `${repository}:${a.tag}`, source: a.target };
    });
    const referenceOf = (a: (typeof artifacts)[number]) => `${destinationOf(a).registry}/${a.target}`;
    const report: PushReport = {
      file: source.file,
      name: source.name,
      version: source.version,
      target: `${options.to.registry}${options.to.prefix ? `/${options.to.prefix}` : ''}`,
      packsTarget: `${packsTo.registry}${packsTo.prefix ? `/${packsTo.prefix}` : ''}`,
      status: 'planned',
      signedBy: source.signedBy,
      images: source.counts.images,
      charts: source.counts.charts,
      packs: source.counts.packs,
      files: { count: source.counts.files, pushed: false, note: source.counts.files ? source.filesNote : 'no files' },
      ...newTransferCounters(),
      resumedBlobs: 0,
      seconds: 0,
      references: artifacts.map((a) => ({ kind: a.kind, source: a.source, reference: referenceOf(a), digest: a.digest, outcome: 'planned' as const })),
    };
    if (options.dryRun) {
      // No request: the source is checked instead.
      await source.checkDryRun();
      return { ...report, seconds: (Date.now() - started) / 1000 };
    }

    const clientFor = (to: RegistryDestination, label: string) =>
      new RegistryClient({
        registry: to.registry,
        insecure: options.insecureRegistries.includes(to.registry),
        ...(options.caPem ? { caPem: options.caPem } : {}),
        ...(options.credentialsFor(to.registry) ? { credentials: options.credentialsFor(to.registry)! } : {}),
        access: 'push',
        label,
        maxSockets: Math.max(8, options.jobs * 2),
        ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    targets.images = clientFor(options.to, `registry ${options.to.registry}`);
    targets.packs = packsTo.registry === options.to.registry ? targets.images : clientFor(packsTo, `pack registry ${packsTo.registry}`);
    const journal = openFileJournal(options.journalDir, source.journalKey, `${report.target} ${report.packsTarget} ${JSON.stringify(options.registryMap)}`);
    // Before the first write request, every blob that may be sent is checked (a .bin:
    // against the signed TOC; a damaged or altered file pushes nothing, not even a blob).
    // Blobs the registry has (HEAD, recorded in the journal as present) are not sent.
    const toSend = new Map<string, PlannedBlob>();
    const knownMissing = new Set<string>();
    const checks = artifacts.flatMap((a) => a.blobs.map((blob) => ({ a, blob })));
    await runPool(checks, Math.max(4, options.jobs), options.signal, async ({ a, blob }) => {
      if (journal.has(a.registry, a.repository, blob.digest)) return;
      if (await targets[a.registry]!.hasBlob(a.repository, blob.digest)) journal.record(a.registry, a.repository, blob, 'present');
      else {
        toSend.set(blob.digest, blob);
        knownMissing.add(`${a.registry} ${a.repository} ${blob.digest}`);
      }
    });
    await source.checkBeforeSend([...toSend.values()]);
    const counters = newTransferCounters();
    const ctx: TransferContext = {
      openBlob: source.openBlob,
      targets: targets as Record<Destination, PushTarget>,
      journal,
      counters,
      signal: options.signal ?? new AbortController().signal,
      concurrency: options.jobs,
      log: options.log ?? QUIET_LOG,
      knownMissing,
      progress: (p) => options.onProgress?.(p),
    };
    // From here requests write: a failure is reported with what landed, not only thrown.
    let stopped: AirgapError | undefined;
    try {
      await transfer(ctx, artifacts, report);
    } catch (err) {
      if (!(err instanceof AirgapError) || ctx.signal.aborted) throw err;
      stopped = err;
      for (const ref of report.references) {
        if (ref.outcome === 'planned') {
          ref.outcome = 'failed';
          ref.error = { code: err.code, message: err.message };
        }
      }
    }
    const failed = report.references.some((r) => r.outcome === 'failed');
    const moved = counters.blobsPushed + counters.blobsMounted + counters.manifestsPushed + counters.tagsPushed > 0;
    if (!failed) await journal.remove();
    return {
      ...report,
      ...counters,
      resumedBlobs: journal.resumed,
      status: failed ? 'partial' : moved ? 'pushed' : 'unchanged',
      seconds: Math.round((Date.now() - started) / 10) / 100,
      ...(stopped ? { error: { code: stopped.code, message: stopped.message, ...(stopped.hint ? { hint: stopped.hint } : {}) } } : {}),
    };
  } finally {
    targets.images?.close();
    if (targets.packs !== targets.images) targets.packs?.close();
  }
}
