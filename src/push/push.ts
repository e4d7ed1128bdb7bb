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
import { PayloadError, RegistryError, UsageError } from '../kit/errors.js';
import { openPayload, verifyEntries, verifyPayloadData, type OpenedPayload } from '../format/reader.js';
import type { PublicKeyInfo } from '../format/keys.js';
import { RegistryClient, type Credentials, type PushTarget } from '../oci/client.js';
import { targetProblem } from '../oci/reference.js';
import { newTransferCounters, type Destination, type TransferContext, type TransferLog, type TransferProgress } from '../transfer/context.js';
import { planTransfer, type PlannedArtifact } from '../transfer/plan.js';
import { pushBlobs } from '../transfer/push-blobs.js';
import { pushManifests } from '../transfer/push-manifests.js';
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
  const targets: Partial<Record<Destination, RegistryClient>> = {};
  try {
    const plan = await planTransfer(opened);
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
      file: options.file,
      name: opened.toc.name,
      version: opened.toc.version,
      target: `${options.to.registry}${options.to.prefix ? `/${options.to.prefix}` : ''}`,
      packsTarget: `${packsTo.registry}${packsTo.prefix ? `/${packsTo.prefix}` : ''}`,
      status: 'planned',
      signedBy: opened.signature.status === 'verified' ? opened.signature.keyId : null,
      images: opened.toc.images.length,
      charts: opened.toc.charts.length,
      packs: opened.toc.packs.length,
      files: { count: opened.toc.files.length, pushed: false, note: opened.toc.files.length ? 'files are not pushed to a registry; copy them from the .bin (sh FILE --target DIR)' : 'no files' },
      ...newTransferCounters(),
      resumedBlobs: 0,
      seconds: 0,
      references: artifacts.map((a) => ({ kind: a.kind, source: a.source, reference: referenceOf(a), digest: a.digest, outcome: 'planned' as const })),
    };
    if (options.dryRun) {
      // No request: every entry is checked against the signed TOC instead.
      await verifyPayloadData(opened, (p) => options.onProgress?.({ stage: 'verify', ...p }));
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
    const journal = openFileJournal(options.journalDir, opened.header.payloadSha256, `${report.target} ${report.packsTarget} ${JSON.stringify(options.registryMap)}`);
    // Before the first write request, the bytes of every blob that may be sent are checked
    // against the signed TOC: a damaged or altered file pushes nothing, not even a blob.
    // Blobs the registry has (HEAD, recorded in the journal as present) are neither sent
    // nor read, so an upgrade reads only what changed.
    const toSend = new Map<string, { path: string; size: number }>();
    const knownMissing = new Set<string>();
    const checks = artifacts.flatMap((a) => a.blobs.map((blob) => ({ a, blob })));
    await runPool(checks, Math.max(4, options.jobs), options.signal, async ({ a, blob }) => {
      if (journal.has(a.registry, a.repository, blob.digest)) return;
      if (await targets[a.registry]!.hasBlob(a.repository, blob.digest)) journal.record(a.registry, a.repository, blob, 'present');
      else {
        toSend.set(blob.path, blob);
        knownMissing.add(`${a.registry} ${a.repository} ${blob.digest}`);
      }
    });
    await verifyEntries(opened, [...toSend.keys()], (p) => options.onProgress?.({ stage: 'verify', ...p }));
    const counters = newTransferCounters();
    const ctx: TransferContext = {
      opened,
      targets: targets as Record<Destination, PushTarget>,
      journal,
      counters,
      signal: options.signal ?? new AbortController().signal,
      concurrency: options.jobs,
      log: options.log ?? QUIET_LOG,
      knownMissing,
      progress: (p) => options.onProgress?.(p),
    };
    for (const [kind, stage] of [['image', 'images'], ['chart', 'charts'], ['pack', 'packs']] as const) {
      const ofKind = artifacts.filter((a) => a.kind === kind);
      if (!ofKind.length) continue;
      await pushBlobs(ctx, stage, ofKind);
      await pushManifests(ctx, stage, ofKind);
    }
    // Tags last, each on its own: one refused (an immutable tag, a missing project) does
    // not keep the others from landing.
    for (const [i, a] of artifacts.entries()) {
      ctx.signal.throwIfAborted();
      const ref = report.references[i]!;
      const target = ctx.targets[a.registry];
      try {
        if ((await target.tagDigest(a.repository, a.tag)) === a.digest) {
          ref.outcome = 'unchanged';
        } else {
          const top = a.manifests[a.manifests.length - 1]!;
          await target.putManifest(a.repository, a.tag, top.mediaType, top.bytes);
          counters.tagsPushed++;
          ref.outcome = 'pushed';
        }
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        ref.outcome = 'failed';
        ref.error = { code: err.code, message: err.message };
      }
      ctx.progress({ stage: 'tags', bytesDone: 0, bytesTotal: 0, itemsDone: i + 1, itemsTotal: artifacts.length });
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
    };
  } finally {
    targets.images?.close();
    if (targets.packs !== targets.images) targets.packs?.close();
    await opened.close();
  }
}
