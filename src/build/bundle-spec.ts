/**
 * `bundle.yaml`, the build input (docs/cli.md, "bundle.yaml"):
 *
 *   apiVersion: airgap/v1
 *   kind: Bundle
 *   name: demo
 *   version: 1.0.0
 *   images: [{ source: oci:./images:busybox, target: library/busybox:1.35 }]
 *   charts: [{ source: ./charts/hello-0.1.0.tgz }, { source: oci://HOST/REPO:TAG },
 *            { repo: https://charts.example.com, name: clearml, version: 7.14.x }]
 *   packs:  [{ source: ./packs/cilium }]
 *   files:  [{ source: ./manifests/, target: manifests/ }]
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { BundleError } from '../kit/errors.js';
import { BUNDLE_NAME, MAX_VERSION_LENGTH, SEMVER } from '../format/names.js';
import { targetProblem } from '../oci/reference.js';
import { entryPathProblem } from '../format/paths.js';

export interface BundleSpec {
  name: string;
  version: string;
  /** An image (`source`, optional `target`), or every image of the pod templates in files (`fromManifests`), or of a list (`fromList`). */
  images: ImageItem[];
  /** A local .tgz or `oci://` reference (`source`), or a chart of a Helm repository (`repo`, `name`, `version`). */
  charts: ChartItem[];
  packs: Array<{ source: string }>;
  files: Array<{ source: string; target: string }>;
  /** Directory of bundle.yaml: relative sources resolve against it. */
  baseDir: string;
}

/** One `images:` item. */
export type ImageItem = { source: string; target?: string } | { fromManifests: string } | { fromList: string };

/** What a chart item may add: `images: auto` carries the images it refers to, found with `values` (a path). */
interface ChartImages {
  images?: 'auto';
  values?: string;
}

/** One `charts:` item. */
export type ChartItem = ({ source: string } | { repo: string; name: string; version: string }) & ChartImages;

const SECTIONS = new Set(['apiVersion', 'kind', 'name', 'version', 'images', 'charts', 'packs', 'files']);

function fail(file: string, message: string, hint?: string): never {
  throw new BundleError('AG_SPEC', `${file}: ${message}`, hint ? { hint } : {});
}

/**
 * Reads and validates a bundle spec. Throws BundleError AG_SPEC naming the file and the
 * first wrong field (unknown keys included, so that typos do not pass silently).
 */
export async function loadBundleSpec(path: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new BundleError('AG_SPEC', `cannot read ${path}`, { cause });
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) fail(path, `not valid YAML: ${doc.errors[0]!.message}`);
  const root = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (typeof root !== 'object' || root === null || Array.isArray(root)) fail(path, 'must be a YAML mapping');
  const r = root as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!SECTIONS.has(key)) fail(path, `unknown key '${key}'`, `known keys: ${[...SECTIONS].join(', ')}`);
  if (r.apiVersion !== 'airgap/v1') fail(path, "apiVersion must be 'airgap/v1'");
  if (r.kind !== 'Bundle') fail(path, "kind must be 'Bundle'");
  if (typeof r.name !== 'string' || !BUNDLE_NAME.test(r.name)) fail(path, 'name must be lower-case letters, digits, ".", "_" or "-" (at most 64)');
  const version = typeof r.version === 'number' ? String(r.version) : r.version;
  if (typeof version !== 'string' || !SEMVER.test(version)) fail(path, `version '${String(r.version)}' is not a semantic version like 1.2.3 (at most ${MAX_VERSION_LENGTH} characters)`);

  const list = (key: string, allowed: string[], required: string[]): Array<Record<string, string>> => {
    const value = r[key] ?? [];
    if (!Array.isArray(value)) fail(path, `${key} must be a list`);
    return value.map((item: unknown, i: number) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) fail(path, `${key}[${i}] must be a mapping`);
      const o = item as Record<string, unknown>;
      for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(path, `${key}[${i}] has an unknown key '${k}'`, `allowed: ${allowed.join(', ')}`);
      for (const k of allowed) {
        if (o[k] === undefined && !required.includes(k)) continue;
        if (typeof o[k] !== 'string' || o[k] === '') fail(path, `${key}[${i}].${k} must be a non-empty string`);
      }
      return o as Record<string, string>;
    });
  };
  const images = list('images', ['source', 'target', 'fromManifests', 'fromList'], []).map((img, i): ImageItem => {
    const kinds = ['source', 'fromManifests', 'fromList'].filter((k) => img[k] !== undefined);
    if (kinds.length !== 1) fail(path, `images[${i}] needs one of source, fromManifests or fromList`, 'for example {source: docker://quay.io/org/app:1.2}, {fromManifests: ./rendered/*.yaml} or {fromList: ./images.txt}');
    if (img.target !== undefined && img.source === undefined) fail(path, `images[${i}].target goes with source only (found images get their reference without the registry host)`);
    const problem = img.target !== undefined ? targetProblem(img.target) : undefined;
    if (problem) fail(path, `images[${i}].target ${problem}`);
    if (img.source !== undefined) return img.target !== undefined ? { source: img.source, target: img.target } : { source: img.source };
    return img.fromManifests !== undefined ? { fromManifests: img.fromManifests } : { fromList: img.fromList! };
  });
  const files = list('files', ['source', 'target'], ['source', 'target']);
  files.forEach((f, i) => {
    const problem = entryPathProblem(f.target!.replace(/\/+$/, ''));
    if (problem) fail(path, `files[${i}].target '${f.target}' ${problem}`, 'a relative path such as manifests/ or bin/tool');
  });
  return {
    name: r.name,
    version,
    images,
    charts: list('charts', ['source', 'repo', 'name', 'version', 'images', 'values'], []).map((c, i): ChartItem => {
      if (c.images !== undefined && c.images !== 'auto') fail(path, `charts[${i}].images must be 'auto' (carry the images the chart refers to)`);
      if (c.values !== undefined && c.images === undefined) fail(path, `charts[${i}].values is used to find images: it goes with images: auto`);
      const extra = { ...(c.images ? { images: 'auto' as const } : {}), ...(c.values ? { values: c.values } : {}) };
      if (c.source !== undefined && c.repo === undefined && c.name === undefined && c.version === undefined) return { source: c.source, ...extra };
      if (c.repo !== undefined && c.source === undefined && c.name !== undefined && c.version !== undefined) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(c.name)) fail(path, `charts[${i}].name '${c.name}' is not a chart name`, 'letters, digits, ".", "_" and "-", as in the repository\'s index.yaml');
        return { repo: c.repo, name: c.name, version: c.version, ...extra };
      }
      return fail(path, `charts[${i}] needs either source (a .tgz or oci://HOST/REPO:TAG) or repo, name and version`, 'for example {repo: https://charts.example.com, name: clearml, version: 7.14.7}');
    }),
    packs: list('packs', ['source'], ['source']).map((p) => ({ source: p.source! })),
    files: files.map((f) => ({ source: f.source!, target: f.target! })),
    baseDir: dirname(resolve(path)),
  };
}
