/**
 * `airgap build`: bundle.yaml → one signed, self-extracting `airgap-v<version>.bin`.
 *
 * Two passes. Plan: resolve every source to entries whose size and sha256 are known
 * (manifests and descriptors give them for blobs; files and artifact layers are hashed),
 * so that the TOC, the first tar entry, can be written and signed up front. Write: stream
 * each entry into the tar behind a placeholder header, checking every entry's size and
 * sha256 as it passes and hashing the whole payload in flight; then write the real header
 * at offset 0, fsync and rename. Memory stays flat: no blob is ever held whole.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, statfs, chmod } from 'node:fs/promises';
import { once } from 'node:events';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { BundleError } from '../kit/errors.js';
import { loadBundleSpec, type BundleSpec } from './bundle-spec.js';
import { collectImage, imageSourceFor } from './image-source.js';
import type { Credentials } from '../oci/client.js';
import { runPool } from '../kit/pool.js';
import { chartArtifact, packArtifact, packageChartFolder, listSourceFiles, hashFile, WHOLE_FILE_BYTES, type Artifact } from './artifacts.js';
import { MEDIA_TYPE_OCI_INDEX, type Descriptor } from '../oci/manifest.js';
import {
  ANNOTATION_KIND,
  ANNOTATION_REF_NAME,
  FORMAT_VERSION,
  FORMAT_WITH_RUNTIME,
  RUNTIME_CLI_PATH,
  RUNTIME_DIR,
  RUNTIME_NODE_PATH,
  HEADER_SIZE,
  OCI_INDEX_PATH,
  OCI_LAYOUT_CONTENT,
  OCI_LAYOUT_PATH,
  TOC_PATH,
  binFileName,
  blobPath,
  filePath,
} from '../format/layout.js';
import { encodeFileHeader, endOfArchive, paddingFor } from '../format/tar.js';
import { renderHeader } from '../format/header.js';
import { serializeToc, TOC_API_VERSION, TOC_KIND, type Toc, type TocArtifact, type TocFile, type TocImage } from '../format/toc.js';
import { loadPrivateKey, signBytes } from '../format/keys.js';
import { sha256Hex, hexOfDigest } from '../kit/digest.js';
import { collisionKey, entryPathProblem } from '../format/paths.js';
import { syncDir } from '../kit/fs.js';
import { removeOnForcedExit } from '../kit/exit-cleanup.js';
import { defaultRuntimeCache, packRuntimeFile, type RuntimeSources } from './runtime.js';
import { fetchOciChart, fetchRepoChart } from './chart-source.js';
import { discoverChartImages, imageItemFor, imagesInList, imagesInManifests, type FoundImage } from './discover.js';

export interface BuildProgress {
  stage: 'plan' | 'write' | 'done';
  /** Bytes of payload written so far (write stage). */
  bytesDone: number;
  /** Bytes the payload will have (known once planned). */
  bytesTotal: number;
  /** What is being worked on, e.g. an image source or an entry path. */
  item?: string;
}

export interface BuildOptions {
  /** Path to bundle.yaml. */
  specPath: string;
  /** Output file, or a directory to write `airgap-v<version>.bin` into. Default: the current directory. */
  out?: string;
  /** ed25519 private key (PEM); unsigned when absent. */
  privateKeyPath?: string;
  /** Registries (`host:port`, or `*`) reached over plain HTTP. */
  insecureRegistries?: string[];
  /** Credentials for a registry host, e.g. read from a docker config.json. */
  credentials?: (registry: string) => Credentials | undefined;
  /** PEM of a private CA that source registries' certificates chain to (their origin then trusts it alone). */
  caPem?: string;
  /** Creation time written in the TOC and header. Default: now. */
  created?: Date;
  onProgress?: (progress: BuildProgress) => void;
  /** Aborts the build (Ctrl-C); the partial output is removed. */
  signal?: AbortSignal;
  /** A runtime to carry (format 2: `sh FILE push|verify|inspect` then needs nothing installed); none when absent (format 1). */
  runtime?: RuntimeSources;
}

export interface BuildResult {
  path: string;
  /** The runtime carried (format 2), with the bytes its two entries take; null for format 1. */
  runtime: { node: string; platform: string; bytes: number } | null;
  name: string;
  version: string;
  created: string;
  payloadSize: number;
  payloadSha256: string;
  fileSize: number;
  keyId: string;
  entries: number;
  blobs: number;
  images: TocImage[];
  charts: TocArtifact[];
  packs: TocArtifact[];
  files: TocFile[];
  /** What the admin should know about the inputs (a chart value Helm reads otherwise than written). */
  warnings: string[];
  /** Images found by `images: auto`, `fromManifests` and `fromList`, with where each was found. */
  discovered: Array<{ reference: string; target: string; from: string[] }>;
}

/** What a build would write (`airgap build --dry-run`): BuildResult's lists, nothing written. */
export type BuildPlan = Pick<BuildResult, 'name' | 'version' | 'images' | 'charts' | 'packs' | 'files' | 'warnings' | 'discovered'>;

/**
 * Resolves every source of `options.specPath` as buildBundle does (registries asked for
 * manifests, chart archives fetched, images discovered) and returns the plan without
 * writing a .bin; no blob is read. Throws as buildBundle.
 */
export async function planBuild(options: Omit<BuildOptions, 'out' | 'privateKeyPath' | 'runtime'>): Promise<BuildPlan> {
  const spec = await loadBundleSpec(options.specPath);
  const workDir = await mkdtemp(join(tmpdir(), 'airgap-build-'));
  const forget = removeOnForcedExit(workDir);
  try {
    const { images, charts, packs, files, warnings, discovered } = await planBundle(spec, options, workDir, (item) => {
      options.signal?.throwIfAborted();
      options.onProgress?.({ stage: 'plan', bytesDone: 0, bytesTotal: 0, item });
    });
    return { name: spec.name, version: spec.version, images, charts, packs, files, warnings, discovered };
  } finally {
    await rm(workDir, { recursive: true, force: true });
    forget();
  }
}

/** One tar entry to write: its size and sha256 are known before writing. */
/** Source files hashed at once while planning. */
const HASH_LANES = 8;
/** Small entries read ahead of the one being written. */
const READ_AHEAD = 8;

interface PlannedEntry {
  path: string;
  size: number;
  sha256: string;
  mode: number;
  /** The bytes, in memory (small: manifests, configs, the TOC) or as a stream. */
  open: () => Promise<Buffer | Readable>;
}

class Plan {
  readonly entries = new Map<string, PlannedEntry>();
  readonly namesSeen = new Map<string, string>();
  readonly targets = new Map<string, string>();
  readonly indexManifests: Descriptor[] = [];

  add(entry: PlannedEntry): void {
    if (this.entries.has(entry.path)) return; // content-addressed: the same blob is stored once
    const key = collisionKey(entry.path);
    const other = this.namesSeen.get(key);
    if (other !== undefined) {
      throw new BundleError('AG_DUPLICATE', `'${entry.path}' and '${other}' would be the same file on a case-insensitive or normalising file system`);
    }
    this.namesSeen.set(key, entry.path);
    this.entries.set(entry.path, entry);
  }

  addBlob(descriptor: Descriptor, open: () => Promise<Buffer | Readable>): void {
    this.add({ path: blobPath(descriptor.digest), size: descriptor.size, sha256: hexOfDigest(descriptor.digest), mode: 0o644, open });
  }

  claimTarget(target: string, what: string): void {
    const other = this.targets.get(target);
    if (other) throw new BundleError('AG_DUPLICATE', `${what} and ${other} both target ${target}`);
    this.targets.set(target, what);
  }
}

function bufferEntry(path: string, bytes: Buffer): PlannedEntry {
  return { path, size: bytes.length, sha256: sha256Hex(bytes), mode: 0o644, open: async () => bytes };
}

/** Resolves every source of the spec into planned entries and TOC lists. */
async function planBundle(spec: BundleSpec, options: BuildOptions, workDir: string, report: (item: string) => void) {
  const plan = new Plan();
  const images: TocImage[] = [];
  const charts: TocArtifact[] = [];
  const packs: TocArtifact[] = [];
  const files: TocFile[] = [];
  const warnings: string[] = [];

  const fetchOptions = {
    workDir,
    insecureRegistries: options.insecureRegistries ?? [],
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.caPem ? { caPem: options.caPem } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  // Charts first: `images: auto` adds the images they refer to.
  const fetchedCharts: Array<{ file: string; source: string; what: string; name?: string }> = [];
  const imageItems: Array<{ source: string; target?: string; what: string; from?: string[] }> = [];
  for (const [i, item] of spec.images.entries()) {
    if ('source' in item) imageItems.push({ ...item, what: `images[${i}]` });
  }
  const discovered: Array<{ reference: string; target: string; from: string[] }> = [];
  const addFound = (found: FoundImage[], what: string) => {
    for (const f of found) {
      const item = imageItemFor(f);
      const same = imageItems.find((x) => (x.target ?? '') === item.target);
      if (same && same.source !== item.source && same.from === undefined) continue; // listed by hand: that one wins
      if (same && same.source === item.source) {
        if (same.from) same.from.push(...f.from);
        continue;
      }
      imageItems.push({ ...item, what, from: [...f.from] });
      discovered.push({ reference: f.reference, target: item.target, from: imageItems[imageItems.length - 1]!.from! });
    }
  };
  for (const [i, item] of spec.charts.entries()) {
    let file: string;
    let source: string;
    if ('repo' in item) {
      report(`${item.repo} ${item.name} ${item.version}`);
      ({ file, source } = await fetchRepoChart(item.repo, item.name, item.version, fetchOptions));
    } else if (item.source.startsWith('oci://')) {
      report(item.source);
      ({ file, source } = await fetchOciChart(item.source, fetchOptions));
    } else {
      report(item.source);
      const path = resolve(spec.baseDir, item.source);
      // A chart folder is packaged as `helm package` would; a .tgz is taken as it is.
      file = (await stat(path).then((s) => s.isDirectory(), () => false)) ? await packageChartFolder(path, workDir) : path;
      source = item.source;
    }
    fetchedCharts.push({ file, source, what: `charts[${i}]`, ...('repo' in item ? { name: item.name } : {}) });
    if (item.images === 'auto') {
      const { images: found, method } = await discoverChartImages(file, item.values ? resolve(spec.baseDir, item.values) : undefined);
      if (method !== 'helm template') warnings.push(`${source}: images found without Helm (values and templates); install helm to render the chart, and check the list with airgap images discover`);
      addFound(found, `charts[${i}] images: auto`);
    }
  }
  for (const [i, item] of spec.images.entries()) {
    if ('fromManifests' in item) {
      report(item.fromManifests);
      addFound(await imagesInManifests(item.fromManifests, spec.baseDir), `images[${i}] fromManifests`);
    } else if ('fromList' in item) {
      report(item.fromList);
      addFound(await imagesInList(resolve(spec.baseDir, item.fromList)), `images[${i}] fromList`);
    }
  }

  for (const item of imageItems) {
    report(item.source);
    const source = imageSourceFor(item.source, spec.baseDir, {
      insecureRegistries: options.insecureRegistries ?? [],
      credentials: options.credentials ?? (() => undefined),
      ...(options.caPem ? { caPem: options.caPem } : {}),
      // Ctrl-C stops a request a registry leaves unanswered, not only the next item.
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const target = item.target ?? source.defaultTarget;
    if (!target) throw new BundleError('AG_SPEC', `${item.what} (${item.source}) needs a target: repository:tag`);
    plan.claimTarget(target, item.what);
    const image = await collectImage(source);
    for (const [digest, m] of image.manifests) plan.addBlob({ mediaType: m.mediaType, digest, size: m.bytes.length }, async () => m.bytes);
    for (const blob of image.blobs.values()) plan.addBlob(blob, () => source.openBlob(blob));
    plan.indexManifests.push({ ...image.descriptor, annotations: { [ANNOTATION_REF_NAME]: target, [ANNOTATION_KIND]: 'image' } });
    images.push({ target, source: item.source, digest: image.descriptor.digest, mediaType: image.descriptor.mediaType, size: image.size, platforms: image.platforms });
  }

  const addArtifact = (artifact: Artifact, kind: 'chart' | 'pack', list: TocArtifact[], what: string, source?: string) => {
    plan.claimTarget(artifact.target, what);
    plan.addBlob(artifact.manifest.descriptor, async () => artifact.manifest.bytes);
    plan.addBlob(artifact.config.descriptor, async () => artifact.config.bytes);
    plan.addBlob(artifact.layer.descriptor, async () => createReadStream(artifact.layer.file, { highWaterMark: 1024 * 1024 }));
    plan.indexManifests.push({ ...artifact.manifest.descriptor, annotations: { [ANNOTATION_REF_NAME]: artifact.target, [ANNOTATION_KIND]: kind } });
    const size = artifact.manifest.descriptor.size + artifact.config.descriptor.size + artifact.layer.descriptor.size;
    list.push({ name: artifact.name, version: artifact.version, target: artifact.target, digest: artifact.manifest.descriptor.digest, size, ...(source !== undefined ? { source } : {}) });
  };
  for (const fetched of fetchedCharts) {
    const chart = await chartArtifact(fetched.file);
    if (fetched.name !== undefined && chart.name !== fetched.name) {
      throw new BundleError('AG_CHART', `${fetched.source} holds chart '${chart.name}', not '${fetched.name}' as the repository's index says`);
    }
    warnings.push(...chart.warnings);
    addArtifact(chart, 'chart', charts, fetched.what, fetched.source);
  }
  for (const [i, item] of spec.packs.entries()) {
    report(item.source);
    addArtifact(await packArtifact(resolve(spec.baseDir, item.source), workDir), 'pack', packs, `packs[${i}]`);
  }

  for (const item of spec.files) {
    report(item.source);
    const source = resolve(spec.baseDir, item.source);
    const found = await listSourceFiles(source);
    const asFolder = item.target.endsWith('/') || found.length !== 1 || (await stat(source)).isDirectory();
    const base = item.target.replace(/\/+$/, '');
    const targets = found.map((f) => {
      const target = asFolder ? `${base}/${f.rel}` : base;
      const problem = entryPathProblem(target);
      if (problem) {
        const hidden = target.split('/').some((segment) => segment.startsWith('.'));
        throw new BundleError('AG_FILES', `file target '${target}' ${problem}`, hidden ? { hint: `remove ${f.abs} from the files source, or rename it without the leading '.'` } : {});
      }
      return target;
    });
    // Hashed a few at once (small files are bound by system calls), added in order.
    const hashes: Array<{ digest: string; size: number }> = [];
    await runPool([...found.keys()], HASH_LANES, options.signal, async (i) => {
      hashes[i] = await hashFile(found[i]!.abs, found[i]!.size);
    });
    for (const [i, f] of found.entries()) {
      const target = targets[i]!;
      const { digest, size } = hashes[i]!;
      const path = filePath(target);
      if (plan.entries.has(path)) throw new BundleError('AG_DUPLICATE', `two files target ${target}`);
      const open = size <= WHOLE_FILE_BYTES ? () => readFile(f.abs) : async () => createReadStream(f.abs, { highWaterMark: 1024 * 1024 });
      plan.add({ path, size, sha256: hexOfDigest(digest), mode: f.mode, open });
      files.push({ target, path, size, sha256: hexOfDigest(digest), mode: f.mode });
    }
  }
  return { plan, images, charts, packs, files, warnings, discovered };
}

/** Copies entries into the output stream, hashing the payload and checking each entry. */
class PayloadWriter {
  readonly hash: Hash = createHash('sha256');
  written = 0;
  private failure: Error | undefined;

  constructor(
    private readonly out: WriteStream,
    private readonly onBytes: (n: number) => void,
    private readonly signal?: AbortSignal,
  ) {
    out.on('error', (err) => {
      this.failure = err;
    });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.signal?.throwIfAborted();
    this.hash.update(chunk);
    this.written += chunk.length;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
    this.onBytes(chunk.length);
  }

  /** Writes one entry: header, data (`opened` if read already), padding; checks size and sha256. */
  async entry(entry: PlannedEntry, mtime: number, opened?: Promise<Buffer | Readable>): Promise<void> {
    await this.write(encodeFileHeader({ path: entry.path, size: entry.size, mode: entry.mode, mtime }));
    const source = await (opened ?? entry.open());
    const hash = createHash('sha256');
    let size = 0;
    if (Buffer.isBuffer(source)) {
      hash.update(source);
      size = source.length;
      await this.write(source);
    } else {
      for await (const raw of source) {
        const chunk = raw as Buffer;
        size += chunk.length;
        if (size > entry.size) {
          source.destroy();
          break;
        }
        hash.update(chunk);
        await this.write(chunk);
      }
    }
    if (size !== entry.size || hash.digest('hex') !== entry.sha256) {
      throw new BundleError('AG_SOURCE_CHANGED', `${entry.path}: the source does not match its digest or size (${size} bytes read, ${entry.size} expected)`, {
        hint: 'the source changed during the build or is corrupt; run the build again',
      });
    }
    const padding = paddingFor(entry.size);
    if (padding) await this.write(Buffer.alloc(padding));
  }
}

/** The output file: `out` itself, or `out/airgap-v<version>.bin` when it is a folder (made if needed). */
async function resolveOutPath(out: string | undefined, version: string): Promise<string> {
  const target = resolve(out ?? '.');
  const info = await stat(target).catch(() => undefined);
  const path = info?.isDirectory() || (out ?? '').endsWith('/') ? join(target, binFileName(version)) : target;
  await mkdir(dirname(path), { recursive: true });
  return path;
}

/**
 * Builds the .bin described by `options.specPath`. Returns what was written. Throws
 * BundleError (spec, sources, duplicates, disk space), RegistryError (docker:// sources) or
 * PayloadError (key); on any failure nothing is left at the output path.
 */
export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  const spec = await loadBundleSpec(options.specPath);
  const signer = options.privateKeyPath ? await loadPrivateKey(options.privateKeyPath) : undefined;
  const outPath = await resolveOutPath(options.out, spec.version);
  const created = (options.created ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  const mtime = Math.floor(Date.parse(created) / 1000);
  const progress = options.onProgress ?? (() => {});

  const workDir = await mkdtemp(join(tmpdir(), 'airgap-build-'));
  const partial = `${outPath}.${randomBytes(4).toString('hex')}.partial`;
  // A second Ctrl-C exits at once: these go then too (kit/exit-cleanup.ts).
  const forget = [removeOnForcedExit(workDir), removeOnForcedExit(partial)];
  try {
    progress({ stage: 'plan', bytesDone: 0, bytesTotal: 0 });
    const { plan, images, charts, packs, files, warnings, discovered } = await planBundle(spec, options, workDir, (item) => {
      options.signal?.throwIfAborted();
      progress({ stage: 'plan', bytesDone: 0, bytesTotal: 0, item });
    });

    const runtimeEntries: PlannedEntry[] = [];
    if (options.runtime) {
      progress({ stage: 'plan', bytesDone: 0, bytesTotal: 0, item: `runtime: Node.js ${options.runtime.nodeVersion} ${options.runtime.platform}` });
      const cacheDir = options.runtime.cacheDir ?? defaultRuntimeCache();
      for (const [path, source] of [
        [RUNTIME_NODE_PATH, options.runtime.node],
        [RUNTIME_CLI_PATH, options.runtime.cli],
      ] as const) {
        const packed = await packRuntimeFile(source, cacheDir, options.signal);
        runtimeEntries.push({ path, size: packed.size, sha256: packed.sha256, mode: 0o644, open: async () => createReadStream(packed.file, { highWaterMark: 1024 * 1024 }) });
      }
    }
    const indexBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: plan.indexManifests }), 'utf8');
    const ordered: PlannedEntry[] = [
      bufferEntry(OCI_LAYOUT_PATH, Buffer.from(OCI_LAYOUT_CONTENT)),
      bufferEntry(OCI_INDEX_PATH, indexBytes),
      ...plan.entries.values(),
      ...runtimeEntries,
    ];
    // blobs before files, in the order they were met: manifests then their blobs
    ordered.sort((a, b) => rank(a.path) - rank(b.path));
    const toc: Toc = {
      apiVersion: TOC_API_VERSION,
      kind: TOC_KIND,
      name: spec.name,
      version: spec.version,
      created,
      images,
      charts,
      packs,
      files,
      entries: ordered.map((e) => ({ path: e.path, size: e.size, sha256: e.sha256 })),
      ...(options.runtime ? { runtime: { node: options.runtime.nodeVersion, platform: options.runtime.platform } } : {}),
    };
    const tocBytes = serializeToc(toc);
    const tocEntry = bufferEntry(TOC_PATH, tocBytes);
    const tocHeader = encodeFileHeader({ path: TOC_PATH, size: tocBytes.length, mode: 0o644, mtime });
    const all = [tocEntry, ...ordered];
    let payloadSize = 2 * 512;
    /** Where each entry's data will be, from the start of the file (the header's runtime fields need two). */
    const dataOffsets = new Map<string, number>();
    for (const e of all) {
      const headerLength = encodeFileHeader({ path: e.path, size: e.size, mode: e.mode, mtime }).length;
      dataOffsets.set(e.path, HEADER_SIZE + payloadSize - 2 * 512 + headerLength);
      payloadSize += headerLength + e.size + paddingFor(e.size);
    }

    await checkFreeSpace(dirname(outPath), HEADER_SIZE + payloadSize);
    progress({ stage: 'write', bytesDone: 0, bytesTotal: payloadSize });

    const out = createWriteStream(partial, { flags: 'wx', mode: 0o644, highWaterMark: 4 * 1024 * 1024 });
    await once(out, 'open');
    let done = 0;
    let lastReport = 0;
    const writer = new PayloadWriter(
      out,
      (n) => {
        done += n;
        if (done - lastReport >= 8 * 1024 * 1024 || done === payloadSize) {
          lastReport = done;
          progress({ stage: 'write', bytesDone: done, bytesTotal: payloadSize });
        }
      },
      options.signal,
    );
    try {
      out.write(Buffer.alloc(HEADER_SIZE, 0x0a)); // placeholder, replaced once the payload digest is known
      // Small entries are read a few ahead, so the disk reads while the writer writes.
      const ahead: Array<Promise<Buffer | Readable> | undefined> = [];
      for (let i = 0; i < all.length; i++) {
        for (let j = i; j < Math.min(all.length, i + READ_AHEAD); j++) {
          if (ahead[j] || all[j]!.size > WHOLE_FILE_BYTES) continue;
          const source = all[j]!.open();
          source.catch(() => {}); // awaited in its turn; a failure ahead of it must not go unhandled
          ahead[j] = source;
        }
        await writer.entry(all[i]!, mtime, ahead[i]);
        ahead[i] = undefined;
      }
      await writer.write(endOfArchive());
      out.end();
      await once(out, 'finish');
    } catch (err) {
      out.destroy();
      await once(out, 'close').catch(() => {});
      throw err;
    }
    if (writer.written !== payloadSize) throw new Error(`internal: wrote ${writer.written} payload bytes, planned ${payloadSize}`);

    const payloadSha256 = writer.hash.digest('hex');
    const span = (path: string) => ({ offset: dataOffsets.get(path)!, size: runtimeEntries.find((e) => e.path === path)!.size });
    const header = renderHeader({
      format: options.runtime ? FORMAT_WITH_RUNTIME : FORMAT_VERSION,
      ...(options.runtime ? { runtime: { node: span(RUNTIME_NODE_PATH), cli: span(RUNTIME_CLI_PATH) } } : {}),
      name: spec.name,
      version: spec.version,
      created,
      payloadOffset: HEADER_SIZE,
      payloadSize,
      payloadSha256,
      tocOffset: HEADER_SIZE + tocHeader.length,
      tocSize: tocBytes.length,
      tocSha256: tocEntry.sha256,
      keyId: signer?.keyId ?? '',
      signature: signer ? signBytes(tocBytes, signer.key) : '',
    });
    const fh = await open(partial, 'r+');
    try {
      await fh.write(header, 0, header.length, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(partial, 0o755);
    await rename(partial, outPath);
    await syncDir(dirname(outPath));
    progress({ stage: 'done', bytesDone: payloadSize, bytesTotal: payloadSize });
    return {
      path: outPath,
      runtime: options.runtime ? { node: options.runtime.nodeVersion, platform: options.runtime.platform, bytes: runtimeEntries.reduce((n, e) => n + e.size, 0) } : null,
      name: spec.name,
      version: spec.version,
      created,
      payloadSize,
      payloadSha256,
      fileSize: HEADER_SIZE + payloadSize,
      keyId: signer?.keyId ?? '',
      entries: all.length,
      blobs: plan.entries.size - files.length,
      images,
      charts,
      packs,
      files,
      warnings,
      discovered,
    };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
    for (const f of forget) f();
  }
}

function rank(path: string): number {
  if (path === OCI_LAYOUT_PATH) return 0;
  if (path === OCI_INDEX_PATH) return 1;
  if (path.startsWith(`${RUNTIME_DIR}/`)) return 4;
  return path.startsWith('oci/') ? 2 : 3;
}

async function checkFreeSpace(dir: string, bytes: number): Promise<void> {
  const fs = await statfs(dir).catch(() => undefined);
  if (!fs) return;
  const free = fs.bavail * fs.bsize;
  if (free < bytes) {
    throw new BundleError('AG_NO_SPACE', `${dir} has ${free} bytes free; the .bin needs ${bytes}`, { hint: 'free some space or pass --out on a larger disk' });
  }
}
