/**
 * Helm charts and packs as OCI artifacts: a small JSON config blob, one tar+gzip layer,
 * and an image manifest tying them together (OCI image-spec, "Guidelines for artifact
 * usage"); charts exactly as `helm push` writes them (helm-chart.ts).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readFile, stat, utimes } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { createGunzip, createGzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { parse as parseYaml } from 'yaml';
import { BundleError } from '../kit/errors.js';
import { sha256Digest, sha256Tap } from '../kit/digest.js';
import {
  MEDIA_TYPE_HELM_CHART,
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_PACK_CONFIG,
  MEDIA_TYPE_PACK_CONTENT,
  type Descriptor,
} from '../oci/manifest.js';
import { chartTarget, packTarget } from '../format/layout.js';
import { targetProblem } from '../oci/reference.js';
import { helmAnnotations, helmConfigDescriptor, helmConfigJson, helmManifest, loadChartMetadata, rfc3339Seconds } from './helm-chart.js';
import { BUNDLE_NAME, SEMVER } from '../format/names.js';

/** A blob of an artifact that lives in a file (the chart .tgz, a pack's tarball). */
export interface FileBlob {
  descriptor: Descriptor;
  file: string;
}

export interface Artifact {
  name: string;
  version: string;
  /** `charts/<name>:<version>` or `packs/<name>:<version>`. */
  target: string;
  manifest: { descriptor: Descriptor; bytes: Buffer };
  config: { descriptor: Descriptor; bytes: Buffer };
  layer: FileBlob;
}

const MIB = 1024 * 1024;
/** Helm refuses a chart archive that unpacks to more than this (MaxDecompressedChartSize). */
const HELM_MAX_CHART_BYTES = 100 * MIB;
/** Helm refuses a chart archive with a file larger than this (MaxDecompressedFileSize). */
const HELM_MAX_FILE_BYTES = 5 * MIB;

/** Files up to this size are read in one piece (hashing, and the builder's copy); larger ones stream. */
export const WHOLE_FILE_BYTES = 1024 * 1024;

/**
 * sha256 (`sha256:<hex>`) and size in bytes of a file: read whole when `sizeHint` says it
 * is small, else as a stream. The size returned is what was read, whatever the hint.
 */
export async function hashFile(file: string, sizeHint?: number): Promise<{ digest: string; size: number }> {
  if (sizeHint !== undefined && sizeHint <= WHOLE_FILE_BYTES) {
    // One read of exactly the file: a 1 MiB stream buffer per small file is what costs.
    const data = await readFile(file);
    return { digest: sha256Digest(data), size: data.length };
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

function artifactManifest(configMediaType: string, configBytes: Buffer, layer: Descriptor, annotations: Record<string, string>) {
  const config: Descriptor = { mediaType: configMediaType, digest: sha256Digest(configBytes), size: configBytes.length };
  const manifest = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST, config, layers: [layer], annotations };
  const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  return {
    config: { descriptor: config, bytes: configBytes },
    manifest: { descriptor: { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: sha256Digest(bytes), size: bytes.length }, bytes },
  };
}

/**
 * Reads `<chart>/Chart.yaml` and, when there, `<chart>/requirements.yaml` from a chart
 * archive without extracting anything (Helm's loader drops the first path part: any
 * folder name). A UTF-8 BOM goes, as Helm's loader strips it.
 */
async function readChartFiles(tgz: string): Promise<{ chartYaml: string; requirementsYaml?: string }> {
  const extract = tarStream.extract();
  const found = new Map<string, Buffer>();
  let unpacked = 0;
  extract.on('entry', (header, stream, next) => {
    // Helm's own limits (pkg/chart/loader/archive.go): a chart it would refuse is refused
    // here before it is unpacked further.
    unpacked += header.size ?? 0;
    if ((header.size ?? 0) > HELM_MAX_FILE_BYTES || unpacked > HELM_MAX_CHART_BYTES) {
      stream.on('error', () => {}); // the entry ends with the archive; its error is the archive's
      next(new BundleError('AG_CHART', `${tgz} holds ${(header.size ?? 0) > HELM_MAX_FILE_BYTES ? `a file larger than ${HELM_MAX_FILE_BYTES / MIB} MiB (${header.name})` : `more than ${HELM_MAX_CHART_BYTES / MIB} MiB unpacked`}; Helm refuses such a chart`));
      return;
    }
    const parts = header.name.split('/').filter(Boolean);
    const name = parts.length === 2 ? parts[1]! : '';
    if ((name === 'Chart.yaml' || name === 'requirements.yaml') && !found.has(name) && header.type === 'file' && (header.size ?? 0) < 1024 * 1024) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        found.set(name, Buffer.concat(chunks));
        next();
      });
    } else {
      stream.on('end', () => next());
      stream.resume();
    }
  });
  await pipeline(createReadStream(tgz), createGunzip(), extract);
  const chartYaml = found.get('Chart.yaml');
  if (!chartYaml) throw new BundleError('AG_CHART', `${tgz} has no <name>/Chart.yaml; is it a Helm chart packaged with 'helm package'?`);
  const text = (b: Buffer) => b.toString('utf8').replace(/^\uFEFF/, '');
  const requirements = found.get('requirements.yaml');
  return { chartYaml: text(chartYaml), ...(requirements ? { requirementsYaml: text(requirements) } : {}) };
}

/**
 * Makes the OCI artifact of a Helm chart archive exactly as `helm push` does
 * (build/helm-chart.ts): config = Helm's chart.Metadata as Go's json.Marshal writes it
 * (application/vnd.cncf.helm.config.v1+json), layer = the .tgz as it is
 * (application/vnd.cncf.helm.chart.content.v1.tar+gzip), manifest with Helm's
 * annotations, `created` from the archive's mtime. Returns warnings about values Helm
 * reads otherwise than written. Throws BundleError AG_CHART.
 */
export async function chartArtifact(tgz: string): Promise<Artifact & { warnings: string[] }> {
  let files: Awaited<ReturnType<typeof readChartFiles>>;
  try {
    files = await readChartFiles(tgz);
  } catch (cause) {
    if (cause instanceof BundleError) throw cause;
    throw new BundleError('AG_CHART', `${tgz} is not a readable chart archive (.tgz)`, { cause });
  }
  const { metadata, warnings } = loadChartMetadata(files.chartYaml, files.requirementsYaml, tgz);
  const { name, version } = metadata;
  const target = chartTarget(name, version);
  const problem = targetProblem(target);
  if (problem) throw new BundleError('AG_CHART', `${tgz}: chart ${name} ${version} would be ${target}, which ${problem}`, { hint: 'OCI repository names are lower-case letters, digits and separators' });
  const layerHash = await hashFile(tgz);
  const layer: Descriptor = { mediaType: MEDIA_TYPE_HELM_CHART, ...layerHash };
  const configBytes = helmConfigJson(metadata);
  const config = helmConfigDescriptor(configBytes);
  const created = rfc3339Seconds((await stat(tgz)).mtimeMs);
  const manifestBytes = helmManifest(config, [layer], helmAnnotations(metadata, created));
  return {
    name,
    version,
    target,
    config: { descriptor: config, bytes: configBytes },
    manifest: { descriptor: { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: sha256Digest(manifestBytes), size: manifestBytes.length }, bytes: manifestBytes },
    layer: { descriptor: layer, file: tgz },
    warnings,
  };
}

/** Every regular file and directory under `dir`, sorted, as '/'-separated relative paths. */
async function walk(dir: string, root = dir): Promise<Array<{ rel: string; abs: string; dir: boolean; mode: number; size: number }>> {
  const out: Array<{ rel: string; abs: string; dir: boolean; mode: number; size: number }> = [];
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const abs = join(dir, name);
    const info = await lstat(abs);
    const rel = relative(root, abs).split(sep).join('/');
    if (info.isDirectory()) {
      out.push({ rel, abs, dir: true, mode: 0o755, size: 0 });
      out.push(...(await walk(abs, root)));
    } else if (info.isFile()) {
      out.push({ rel, abs, dir: false, mode: info.mode & 0o111 ? 0o755 : 0o644, size: info.size });
    } else {
      throw new BundleError('AG_PACK', `${abs} is not a regular file or directory (links and devices are not packed)`, { hint: 'replace it with a copy of what it points to' });
    }
  }
  return out;
}

/**
 * Makes the OCI artifact of a pack folder: config = pack.yaml as JSON
 * (application/vnd.airgap.pack.config.v1+json), layer = a reproducible tar+gzip of the
 * folder written into `workDir` (sorted names, zero times and owners). Throws BundleError AG_PACK.
 */
export async function packArtifact(folder: string, workDir: string): Promise<Artifact> {
  let meta: Record<string, unknown>;
  try {
    meta = parseYaml(await readFile(join(folder, 'pack.yaml'), 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new BundleError('AG_PACK', `${folder} has no readable pack.yaml`, { cause, hint: 'a pack is a folder with pack.yaml (name, version, …)' });
  }
  const name = meta?.name;
  const version = typeof meta?.version === 'number' ? String(meta.version) : meta?.version;
  if (typeof name !== 'string' || !BUNDLE_NAME.test(name)) throw new BundleError('AG_PACK', `${folder}/pack.yaml: name must be lower-case letters, digits, '.', '_' or '-'`);
  if (typeof version !== 'string' || !SEMVER.test(version)) throw new BundleError('AG_PACK', `${folder}/pack.yaml: version '${String(version)}' is not semver`);

  const entries = await walk(folder);
  const tarball = join(workDir, `pack-${name}-${version}-${basename(folder)}.tar.gz`);
  const pack = tarStream.pack();
  const counter = sha256Tap();
  const written = pipeline(pack, createGzip({ level: 6 }), counter, createWriteStream(tarball));
  for (const e of entries) {
    const header = { name: e.dir ? `${e.rel}/` : e.rel, mode: e.mode, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
    if (e.dir) {
      pack.entry({ ...header, type: 'directory' });
      continue;
    }
    await new Promise<void>((resolveEntry, reject) => {
      const sink = pack.entry({ ...header, type: 'file', size: e.size }, (err) => (err ? reject(err) : resolveEntry()));
      createReadStream(e.abs).on('error', reject).pipe(sink);
    });
  }
  pack.finalize();
  await written;
  const layer: Descriptor = { mediaType: MEDIA_TYPE_PACK_CONTENT, digest: `sha256:${counter.digest()}`, size: counter.bytes() };
  const parts = artifactManifest(MEDIA_TYPE_PACK_CONFIG, Buffer.from(JSON.stringify({ ...meta, version }), 'utf8'), layer, {
    'org.opencontainers.image.title': name,
    'org.opencontainers.image.version': version,
  });
  return { name, version, target: packTarget(name, version), ...parts, layer: { descriptor: layer, file: tarball } };
}

/** Files of a `files:` item: a file, or a folder walked recursively (regular files only). */
export async function listSourceFiles(source: string): Promise<Array<{ rel: string; abs: string; mode: number; size: number }>> {
  const info = await lstat(source).catch((cause: unknown) => {
    throw new BundleError('AG_FILES', `cannot read ${source}`, { cause });
  });
  if (info.isFile()) return [{ rel: basename(source), abs: source, mode: info.mode & 0o111 ? 0o755 : 0o644, size: info.size }];
  if (!info.isDirectory()) throw new BundleError('AG_FILES', `${source} is not a regular file or directory`);
  try {
    return (await walk(source)).filter((e) => !e.dir);
  } catch (cause) {
    if (cause instanceof BundleError) throw new BundleError('AG_FILES', cause.message, { cause, ...(cause.hint ? { hint: cause.hint } : {}) });
    throw cause;
  }
}

/** A .helmignore rule: Helm's pkg/ignore (a base-name pattern, or a path with '/', '!' negates, '/' at the end: folders only). */
interface IgnoreRule {
  negate: boolean;
  dirOnly: boolean;
  /** Matched against the base name when the pattern has no '/', else against the relative path. */
  base: boolean;
  regex: RegExp;
}

function globToRegex(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end === -1) out += '\\[';
      else {
        out += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** Parses .helmignore text; Helm always adds `templates/.?*` (hidden files in templates). */
function helmIgnoreRules(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of [...text.split(/\r?\n/), 'templates/.?*']) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1);
    const dirOnly = line.endsWith('/');
    if (dirOnly) line = line.slice(0, -1);
    line = line.replace(/^\//, '');
    if (!line || line.includes('**')) continue; // Helm refuses '**'; it matches nothing here
    rules.push({ negate, dirOnly, base: !line.includes('/'), regex: globToRegex(line) });
  }
  return rules;
}

function ignored(rules: IgnoreRule[], rel: string, isDir: boolean): boolean {
  let out = false;
  for (const rule of rules) {
    if (rule.dirOnly && !isDir) continue;
    const subject = rule.base ? rel.slice(rel.lastIndexOf('/') + 1) : rel;
    if (rule.regex.test(subject)) out = !rule.negate;
  }
  return out;
}

/**
 * Packages a chart folder as `helm package` lays an archive out: `<name>/<path>` for each
 * file, `.helmignore` honoured (with Helm's `templates/.?*`), files only, mode 0644 (0755
 * when executable), sorted, owner 0, each file's time the time of Chart.yaml (so the same
 * folder gives the same archive); the archive's mtime is that time too (the chart's
 * `created`). Returns the .tgz written into `workDir`. Throws BundleError AG_CHART (no
 * Chart.yaml, a link or device inside, Helm could not load it).
 */
export async function packageChartFolder(folder: string, workDir: string): Promise<string> {
  const chartYaml = await readFile(join(folder, 'Chart.yaml'), 'utf8').catch((cause: unknown) => {
    throw new BundleError('AG_CHART', `${folder} has no readable Chart.yaml; is it a chart folder?`, { cause });
  });
  const requirements = await readFile(join(folder, 'requirements.yaml'), 'utf8').catch(() => undefined);
  const { metadata } = loadChartMetadata(chartYaml.replace(/^\uFEFF/, ''), requirements, folder);
  const rules = helmIgnoreRules(await readFile(join(folder, '.helmignore'), 'utf8').catch(() => ''));
  const when = (await stat(join(folder, 'Chart.yaml'))).mtime;
  const files: Array<{ rel: string; abs: string; mode: number; size: number }> = [];
  const visit = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const rel = relative(folder, abs).split(sep).join('/');
      const info = await lstat(abs);
      if (ignored(rules, rel, info.isDirectory())) continue;
      if (info.isDirectory()) await visit(abs);
      else if (info.isFile()) files.push({ rel, abs, mode: info.mode & 0o111 ? 0o755 : 0o644, size: info.size });
      else throw new BundleError('AG_CHART', `${abs} is not a regular file or folder (links and devices are not packaged)`, { hint: 'replace it with a copy, or list it in .helmignore' });
    }
  };
  await visit(folder);
  const tgz = join(workDir, `chart-${metadata.name}-${metadata.version.replace(/[^A-Za-z0-9._-]/g, '_')}-${randomSuffix()}.tgz`);
  const pack = tarStream.pack();
  const written = pipeline(pack, createGzip({ level: 9 }), createWriteStream(tgz, { mode: 0o600 }));
  for (const f of files) {
    await new Promise<void>((resolveEntry, reject) => {
      const sink = pack.entry({ name: `${metadata.name}/${f.rel}`, mode: f.mode, mtime: when, uid: 0, gid: 0, uname: '', gname: '', type: 'file', size: f.size }, (err) => (err ? reject(err) : resolveEntry()));
      createReadStream(f.abs).on('error', reject).pipe(sink);
    });
  }
  pack.finalize();
  await written;
  await utimes(tgz, when, when);
  return tgz;
}

function randomSuffix(): string {
  return createHash('sha256').update(`${process.pid} ${process.hrtime.bigint()}`).digest('hex').slice(0, 8);
}
