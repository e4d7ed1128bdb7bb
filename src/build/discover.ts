/**
 * Which images a chart or a set of Kubernetes manifests needs, and where each was found,
 * so that `images: auto`, `fromManifests` and `fromList` in bundle.yaml (and `airgap
 * images discover`) can carry them. Honest about its limits: without Helm, a chart is not
 * rendered; images are found where charts conventionally put them (values image maps and
 * image strings, literal `image:` lines in templates, the `artifacthub.io/images`
 * annotation, subcharts under `charts/`), and a reference built from a template is missed.
 * With `helm` on PATH the chart is rendered (`helm template`) and its pod templates read.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { BundleError } from '../kit/errors.js';
import { parseImageReference, targetProblem } from '../oci/reference.js';

/** An image reference found, with every place it was found. */
export interface FoundImage {
  /** The reference as found, e.g. `quay.io/org/app:1.2` or `nginx@sha256:…`. */
  reference: string;
  /** Where: `values.yaml: image (repository, tag)`, `templates/job.yaml`, `deploy.yaml: Deployment/web`. */
  from: string[];
}

/** A reference: [host[:port]/]path[:tag][@sha256:hex], with the grammar of OCI names. */
const REFERENCE = /^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** True for a string that is an image reference with a tag or a digest. */
export function isImageReference(text: string): boolean {
  return REFERENCE.test(text) && (/:[\w][\w.-]*$/.test(text.replace(/@sha256:[a-f0-9]{64}$/, '')) || /@sha256:[a-f0-9]{64}$/.test(text)) && !/^[a-z0-9.-]+:[0-9]+$/.test(text);
}

/** A line without its `#` comment (a `#` at the start or after white space), in one scan. */
function withoutComment(line: string): string {
  for (let i = line.indexOf('#'); i !== -1; i = line.indexOf('#', i + 1)) {
    if (i === 0 || /\s/.test(line[i - 1]!)) return line.slice(0, i);
  }
  return line;
}

/** Adds `reference` found at `from` to `out`, merging places of the same reference. */
function add(out: Map<string, FoundImage>, reference: string, from: string): void {
  const found = out.get(reference) ?? { reference, from: [] };
  if (!found.from.includes(from)) found.from.push(from);
  out.set(reference, found);
}

// ---------------------------------------------------------------------------------------
// Kubernetes manifests: every container image of every pod template.

const POD_PATHS: Record<string, string[][]> = {
  Pod: [['spec']],
  Deployment: [['spec', 'template', 'spec']],
  StatefulSet: [['spec', 'template', 'spec']],
  DaemonSet: [['spec', 'template', 'spec']],
  ReplicaSet: [['spec', 'template', 'spec']],
  ReplicationController: [['spec', 'template', 'spec']],
  Job: [['spec', 'template', 'spec']],
  CronJob: [['spec', 'jobTemplate', 'spec', 'template', 'spec']],
  PodTemplate: [['template', 'spec']],
};

function at(value: unknown, path: string[]): unknown {
  let v = value;
  for (const key of path) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

function imagesOfObject(doc: unknown, where: string, out: Map<string, FoundImage>): void {
  if (typeof doc !== 'object' || doc === null) return;
  const o = doc as Record<string, unknown>;
  if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) {
    for (const item of o.items) imagesOfObject(item, where, out);
    return;
  }
  const paths = typeof o.kind === 'string' ? POD_PATHS[o.kind] : undefined;
  if (!paths) return;
  const name = typeof at(o, ['metadata', 'name']) === 'string' ? (at(o, ['metadata', 'name']) as string) : '?';
  for (const path of paths) {
    const spec = at(o, path);
    for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
      const containers = at(spec, [list]);
      if (!Array.isArray(containers)) continue;
      for (const c of containers) {
        const image = at(c, ['image']);
        if (typeof image === 'string' && image.trim()) add(out, image.trim(), `${where}: ${String(o.kind)}/${name} ${list}`);
      }
    }
  }
}

/**
 * Images of the pod templates in multi-document YAML text (Pod, Deployment, StatefulSet,
 * DaemonSet, ReplicaSet, Job, CronJob, lists of them; init and ephemeral containers too).
 * Throws BundleError AG_SPEC when the text is not YAML.
 */
export function imagesInManifestText(text: string, where: string, out = new Map<string, FoundImage>()): Map<string, FoundImage> {
  for (const doc of parseAllDocuments(text, { prettyErrors: false })) {
    if (doc.errors.length) throw new BundleError('AG_SPEC', `${where} is not valid YAML: ${doc.errors[0]!.message}`);
    imagesOfObject(doc.toJS({ maxAliasCount: 1000 }), where, out);
  }
  return out;
}

/**
 * Files matching `pattern` under `baseDir`, sorted: `*` and `?` within one path part,
 * `**` for any number of folders. Throws BundleError AG_SPEC when none matches.
 */
export async function expandGlob(pattern: string, baseDir: string): Promise<string[]> {
  const absolute = resolve(baseDir, pattern);
  const parts = absolute.split(sep);
  const firstWild = parts.findIndex((p) => /[*?]/.test(p));
  if (firstWild === -1) return [absolute];
  const root = parts.slice(0, firstWild).join(sep) || sep;
  const toRegex = (p: string) => p.split('/').map((part) => (part === '**' ? '(?:[^/]+/)*' : `${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}/`)).join('').replace(/\/$/, '');
  const rest = parts.slice(firstWild).join('/');
  const matcher = new RegExp(`^${toRegex(rest).replace('(?:[^/]+/)*/', '(?:[^/]+/)*')}$`);
  const found: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 32) return;
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, depth + 1);
      else if (entry.isFile() && matcher.test(relative(root, path).split(sep).join('/'))) found.push(path);
    }
  };
  await walk(root, 0);
  if (!found.length) throw new BundleError('AG_SPEC', `no file matches ${pattern}`, { hint: `patterns are relative to ${baseDir}` });
  return found.sort();
}

/** Images of every pod template in the files `pattern` matches. Throws BundleError AG_SPEC. */
export async function imagesInManifests(pattern: string, baseDir: string): Promise<FoundImage[]> {
  const out = new Map<string, FoundImage>();
  for (const file of await expandGlob(pattern, baseDir)) imagesInManifestText(await readFile(file, 'utf8'), relative(baseDir, file) || basename(file), out);
  return [...out.values()];
}

/**
 * References listed in a file, one a line; blank lines and `#` comments (whole lines, or
 * after a space) are skipped. Throws BundleError AG_SPEC naming the line of one that is
 * not a reference with a tag or digest.
 */
export async function imagesInList(file: string): Promise<FoundImage[]> {
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new BundleError('AG_SPEC', `cannot read ${file}`, { cause });
  });
  const out = new Map<string, FoundImage>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = withoutComment(raw).trim();
    if (!line) continue;
    if (!isImageReference(line)) throw new BundleError('AG_SPEC', `${file}:${i + 1}: '${line}' is not an image reference with a tag or digest`, { hint: 'one reference a line, e.g. quay.io/org/app:1.2' });
    add(out, line, `${basename(file)}:${i + 1}`);
  }
  return [...out.values()];
}

// ---------------------------------------------------------------------------------------
// Charts, without Helm.

/** The most a chart's files (with every subchart) may hold, unpacked, for discovery to read them. */
const MAX_CHART_FILES_BYTES = 64 * 1024 * 1024;

/** The files of a chart: from its .tgz (the first path part dropped, as Helm does) or its folder. */
async function chartFiles(chart: string | Buffer, budget: { left: number }): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const add = (name: string, data: Buffer) => {
    budget.left -= data.length;
    if (budget.left < 0) throw new BundleError('AG_CHART', `the chart holds more than ${MAX_CHART_FILES_BYTES / 1024 / 1024} MiB of files`);
    files.set(name, data);
  };
  if (typeof chart === 'string' && (await stat(chart)).isDirectory()) {
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile()) add(relative(chart, path).split(sep).join('/'), await readFile(path));
      }
    };
    await walk(chart);
    return files;
  }
  const extract = tarStream.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    let entryBytes = 0;
    stream.on('error', () => {}); // ends with the archive; the archive's error is the one reported
    stream.on('data', (c: unknown) => {
      // Counted as it comes: a crafted archive cannot make one entry fill the memory first.
      entryBytes += (c as Buffer).length;
      if (entryBytes > budget.left) extract.destroy(new BundleError('AG_CHART', `the chart holds more than ${MAX_CHART_FILES_BYTES / 1024 / 1024} MiB of files`));
      else chunks.push(c as Buffer);
    });
    stream.on('end', () => {
      const name = header.name.split('/').filter(Boolean).slice(1).join('/');
      if (header.type === 'file' && name) {
        try {
          add(name, Buffer.concat(chunks));
        } catch (err) {
          next(err as Error);
          return;
        }
      }
      next();
    });
  });
  await pipeline(typeof chart === 'string' ? (await import('node:fs')).createReadStream(chart) : Readable.from([chart]), createGunzip(), extract);
  return files;
}

/** A plain mapping, or undefined. */
function mapping(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** `b` merged over `a` (mappings deeply, anything else replaced), as Helm merges values. */
function mergeValues(a: unknown, b: unknown): unknown {
  const ma = mapping(a);
  const mb = mapping(b);
  if (!ma || !mb) return b === undefined ? a : b;
  const out: Record<string, unknown> = { ...ma };
  for (const [k, v] of Object.entries(mb)) out[k] = mergeValues(ma[k], v);
  return out;
}

const scalarText = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

/**
 * Image maps and image strings in values: a mapping with `repository` (or `image`) and
 * `tag` and/or `digest` (optional `registry`, else `global.imageRegistry`); without tag or
 * digest the chart's appVersion is the tag, as most charts template it; a string under a
 * key named like `image` that is a reference with a tag or digest.
 */
function imagesInValues(values: unknown, appVersion: string | undefined, where: string, out: Map<string, FoundImage>): void {
  const globalRegistry = scalarText(mapping(mapping(values)?.global)?.imageRegistry);
  const walk = (v: unknown, path: string[], depth: number): void => {
    if (depth > 32) return;
    const m = mapping(v);
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, [...path, String(i)], depth + 1));
    if (!m) {
      const key = path[path.length - 1] ?? '';
      if (typeof v === 'string' && /image$/i.test(key) && isImageReference(v)) add(out, v, `${where}: ${path.join('.')}`);
      return;
    }
    const repository = scalarText(m.repository);
    if (repository && !repository.includes('{{')) {
      const registry = scalarText(m.registry) || globalRegistry;
      const tag = scalarText(m.tag);
      const digest = scalarText(m.digest);
      const name = registry && !repository.startsWith(`${registry}/`) ? `${registry}/${repository}` : repository;
      const reference = digest ? `${name}${tag ? `:${tag}` : ''}@${digest}` : tag ? `${name}:${tag}` : appVersion ? `${name}:${appVersion}` : undefined;
      if (reference && isImageReference(reference)) {
        add(out, reference, `${where}: ${path.join('.') || '(top)'} (repository${tag ? ', tag' : digest ? '' : ', tag from appVersion'}${digest ? ', digest' : ''})`);
        return;
      }
    }
    for (const [k, child] of Object.entries(m)) walk(child, [...path, k], depth + 1);
  };
  walk(values, [], 0);
}

/** Literal `image: REF` lines in templates (not those built from a template expression). */
function imagesInTemplates(files: Map<string, Buffer>, prefix: string, out: Map<string, FoundImage>): void {
  for (const [name, data] of files) {
    if (!name.startsWith('templates/') || !/\.(ya?ml|tpl)$/.test(name)) continue;
    for (const raw of data.toString('utf8').split('\n')) {
      if (raw.length > 4096) continue; // no image line is that long; a crafted one costs nothing
      const line = withoutComment(raw);
      const m = /^\s*(?:-\s+)?image:\s*["']?([^"'\s{}#]+)["']?\s*$/.exec(line);
      if (m && isImageReference(m[1]!)) add(out, m[1]!, `${prefix}${name}`);
    }
  }
}

/**
 * Images a chart (a .tgz, a chart folder, or a nested archive's bytes) refers to, found
 * without rendering it: values image maps and strings (with `valuesOverride` merged over
 * values.yaml), literal references in templates, the `artifacthub.io/images` annotation,
 * and the same for each subchart under `charts/` (with the parent's values for it).
 * Throws BundleError AG_CHART when the chart cannot be read.
 */
export async function imagesInChart(chart: string | Buffer, valuesOverride?: unknown, prefix = '', depth = 0, budget = { left: MAX_CHART_FILES_BYTES }): Promise<FoundImage[]> {
  let files: Map<string, Buffer>;
  try {
    files = await chartFiles(chart, budget);
  } catch (cause) {
    if (cause instanceof BundleError) throw cause;
    throw new BundleError('AG_CHART', `${typeof chart === 'string' ? chart : `${prefix}(subchart)`} is not a readable chart`, { cause });
  }
  return imagesInChartFiles(files, valuesOverride, prefix, depth, budget);
}

/** imagesInChart for a chart's files already read (paths relative to the chart); subcharts, packed or not, in turn. */
async function imagesInChartFiles(files: Map<string, Buffer>, valuesOverride: unknown, prefix: string, depth: number, budget: { left: number }): Promise<FoundImage[]> {
  const out = new Map<string, FoundImage>();
  const yamlOf = (name: string): unknown => {
    const data = files.get(name);
    if (!data) return undefined;
    try {
      return parseYaml(data.toString('utf8'), { maxAliasCount: 1000 }) as unknown;
    } catch (cause) {
      throw new BundleError('AG_CHART', `${prefix}${name} is not valid YAML`, { cause });
    }
  };
  const meta = mapping(yamlOf('Chart.yaml')) ?? {};
  const appVersion = scalarText(meta.appVersion);
  const values = mergeValues(yamlOf('values.yaml') ?? {}, valuesOverride);
  imagesInValues(values, appVersion, `${prefix}values.yaml`, out);
  imagesInTemplates(files, prefix, out);
  const annotation = scalarText(mapping(meta.annotations)?.['artifacthub.io/images']);
  if (annotation) {
    const listed = parseYaml(annotation) as unknown;
    for (const item of Array.isArray(listed) ? listed : []) {
      const image = scalarText(mapping(item)?.image);
      if (image && isImageReference(image)) add(out, image, `${prefix}Chart.yaml: artifacthub.io/images`);
    }
  }
  if (depth < 8) {
    const subcharts = new Map<string, Map<string, Buffer> | Buffer>();
    for (const [name, data] of files) {
      const nested = /^charts\/([^/]+)\.tgz$/.exec(name);
      if (nested) subcharts.set(nested[1]!, data);
      const folder = /^charts\/([^/]+)\/(.+)$/.exec(name);
      if (folder) {
        const sub = (subcharts.get(folder[1]!) as Map<string, Buffer> | undefined) ?? new Map<string, Buffer>();
        sub.set(folder[2]!, data);
        subcharts.set(folder[1]!, sub);
      }
    }
    for (const [name, sub] of subcharts) {
      const parentValues = mapping(values)?.[name.replace(/-\d.*$/, '')];
      const found = Buffer.isBuffer(sub)
        ? await imagesInChart(sub, parentValues, `${prefix}charts/${name}.tgz/`, depth + 1, budget)
        : await imagesInChartFiles(sub, parentValues, `${prefix}charts/${name}/`, depth + 1, budget);
      for (const f of found) for (const from of f.from) add(out, f.reference, from);
    }
  }
  return [...out.values()];
}

/**
 * Renders `chart` with `helm template` (with `valuesFile`) and reads its pod templates.
 * Undefined when `helm` is not on PATH. Throws BundleError AG_CHART when Helm fails.
 */
export async function imagesWithHelm(chart: string, valuesFile?: string, env: NodeJS.ProcessEnv = process.env): Promise<FoundImage[] | undefined> {
  // Loaded here, not at the top: execa is a few hundred modules, and every CLI start would pay for them.
  const { execa } = await import('execa');
  const r = await execa('helm', ['template', 'airgap-discover', chart, ...(valuesFile ? ['--values', valuesFile] : [])], { reject: false, env, extendEnv: false, timeout: 120_000 }).catch(() => undefined);
  if (!r || r.exitCode === undefined) return undefined; // no helm on PATH
  if (r.exitCode !== 0) throw new BundleError('AG_CHART', `helm template ${basename(chart)} failed: ${r.stderr.split('\n')[0] ?? ''}`, { hint: 'check the values file; without Helm on PATH images are found from values and templates instead' });
  return [...imagesInManifestText(r.stdout, `helm template ${basename(chart)}`).values()];
}

/**
 * The images a chart needs: rendered with Helm when it is on PATH, else found as
 * imagesInChart finds them. `method` says which.
 */
export async function discoverChartImages(chart: string, valuesFile?: string, env: NodeJS.ProcessEnv = process.env): Promise<{ method: 'helm template' | 'values and templates'; images: FoundImage[] }> {
  const rendered = await imagesWithHelm(chart, valuesFile, env);
  if (rendered) return { method: 'helm template', images: rendered };
  let override: unknown;
  if (valuesFile) {
    try {
      override = parseYaml(await readFile(valuesFile, 'utf8'), { maxAliasCount: 1000 }) as unknown;
    } catch (cause) {
      throw new BundleError('AG_SPEC', `cannot read the values file ${valuesFile}`, { cause });
    }
  }
  return { method: 'values and templates', images: await imagesInChart(chart, override) };
}

/**
 * The bundle.yaml image item for a found reference: `docker://REF`, and the default target,
 * the reference without its registry host (Docker Hub's one-part names get `library/`); no
 * tag is `latest`, a reference by digest alone gets the tag `sha256-<hex>`. Throws
 * BundleError AG_SPEC for a string that is not a reference.
 */
export function imageItemFor(found: FoundImage): { source: string; target: string } {
  const bad = (why: string) => new BundleError('AG_SPEC', `'${found.reference}' (found in ${found.from[0] ?? '?'}) ${why}`);
  if (!REFERENCE.test(found.reference)) throw bad('is not an image reference');
  const digest = /@(sha256:[a-f0-9]{64})$/.exec(found.reference)?.[1];
  const named = digest ? found.reference.slice(0, -(digest.length + 1)) : found.reference;
  const colon = named.lastIndexOf(':');
  const hasTag = colon > named.lastIndexOf('/');
  const name = hasTag ? named.slice(0, colon) : named;
  const tag = hasTag ? named.slice(colon + 1) : digest ? `sha256-${digest.slice(7)}` : 'latest';
  const ref = parseImageReference(digest ? `${name}@${digest}` : `${name}:${tag}`);
  const target = `${ref.repository}:${tag}`;
  const problem = targetProblem(target);
  if (problem) throw bad(`would be ${target}, which ${problem}`);
  return { source: `docker://${ref.registry}/${ref.repository}${digest ? `@${digest}` : `:${tag}`}`, target };
}
