/**
 * The table of contents, `airgap.yaml`: the first tar entry. It names the release and
 * lists every other entry with its size and sha256, plus what the payload holds (images,
 * charts, packs, files). The signature covers its exact bytes; it covers everything else.
 */
import { setImmediate } from 'node:timers/promises';
import { isMap, isScalar, isSeq, parseDocument, stringify, visit, type Document } from 'yaml';
import { PayloadError } from '../kit/errors.js';
import { BUNDLE_NAME, SEMVER } from './names.js';
import { targetProblem } from '../oci/reference.js';
import { entryPathProblem } from './paths.js';
import { emitLongList, splitLongLists } from './toc-layout.js';
import { SHA256_DIGEST, SHA256_HEX } from '../kit/digest.js';

export const TOC_API_VERSION = 'airgap/v1';
export const TOC_KIND = 'TableOfContents';

/** One tar entry other than the TOC itself. */
export interface TocEntry {
  path: string;
  /** Bytes. */
  size: number;
  /** Lower-case hex sha256 of the entry's data. */
  sha256: string;
}

export interface TocImage {
  /** `repository:tag` in the appliance image registry. */
  target: string;
  /** Where it came from, as written in bundle.yaml. */
  source: string;
  /** Digest of the top manifest or index. */
  digest: string;
  mediaType: string;
  /** Bytes of every blob and manifest the image needs. */
  size: number;
  /** `os/architecture[/variant]` of each manifest (one for a single-platform image). */
  platforms: string[];
}

export interface TocArtifact {
  name: string;
  version: string;
  /** `charts/<name>:<version>` or `packs/<name>:<version>`. */
  target: string;
  digest: string;
  size: number;
  /**
   * Where a chart came from, as the writer resolved it: the path in bundle.yaml, the
   * archive's URL in a Helm repository, or `oci://…@sha256:…`. Informative; optional.
   */
  source?: string;
}

export interface TocFile {
  /** Path under the repository's `/repo/<version>/`. */
  target: string;
  /** The tar entry: `files/<target>`. */
  path: string;
  size: number;
  sha256: string;
  /** Permission bits: 0o644 or 0o755 (the only modes the writer writes and the reader accepts). */
  mode: number;
}

export interface Toc {
  apiVersion: typeof TOC_API_VERSION;
  kind: typeof TOC_KIND;
  name: string;
  version: string;
  /** ISO 8601 UTC. */
  created: string;
  images: TocImage[];
  charts: TocArtifact[];
  packs: TocArtifact[];
  files: TocFile[];
  entries: TocEntry[];
  /** Format 2: the runtime the file carries (its entries are RUNTIME_NODE_PATH and RUNTIME_CLI_PATH). */
  runtime?: TocRuntime;
}

/** What runtime/node.gz is: a Node.js release (`v20.20.2`) for a platform (`linux-x64`). */
export interface TocRuntime {
  node: string;
  platform: string;
}

/**
 * Serialises the TOC as YAML with a fixed key order (the bytes that get signed). The long
 * lists, `files` and `entries`, are written line by line in the layout YAML itself gives
 * them (toc-layout.ts), so that a TOC of 100,000 files takes milliseconds.
 */
export function serializeToc(toc: Toc): Buffer {
  const head = {
    apiVersion: toc.apiVersion,
    kind: toc.kind,
    name: toc.name,
    version: toc.version,
    created: toc.created,
    images: toc.images.map((i) => ({ target: i.target, source: i.source, digest: i.digest, mediaType: i.mediaType, size: i.size, platforms: [...i.platforms] })),
    charts: toc.charts.map(artifactOrder),
    packs: toc.packs.map(artifactOrder),
    ...(toc.runtime ? { runtime: { node: toc.runtime.node, platform: toc.runtime.platform } } : {}),
  };
  // No anchors: two images with the same platforms list must not become an alias, which readers refuse.
  const text = [
    stringify(head, { lineWidth: 0, aliasDuplicateObjects: false }),
    emitLongList('files', toc.files.map((f) => ({ target: f.target, path: f.path, size: f.size, sha256: f.sha256, mode: `0${f.mode.toString(8)}` }))),
    emitLongList('entries', toc.entries.map((e) => ({ path: e.path, size: e.size, sha256: e.sha256 }))),
  ].join('');
  return Buffer.from(text, 'utf8');
}

function artifactOrder(a: TocArtifact) {
  return { name: a.name, version: a.version, target: a.target, digest: a.digest, size: a.size, ...(a.source !== undefined ? { source: a.source } : {}) };
}

/** Largest TOC accepted, in bytes: 64 MiB is room for about 400,000 entries. */
export const MAX_TOC_BYTES = 64 * 1024 * 1024;

/**
 * Largest TOC read with the YAML library whole, in bytes: one whose long lists are not in
 * the writer's layout. A YAML tree costs the library 40 to 500 times the text in memory,
 * so a larger TOC must use the layout (docs/format.md, section 4.8).
 */
export const MAX_FREE_FORM_TOC_BYTES = 256 * 1024;

/**
 * Largest part of a TOC in the writer's layout that is not its long lists (the header
 * fields, images, charts, packs), in bytes: room for about 2,500 images.
 */
export const MAX_TOC_REST_BYTES = 1024 * 1024;

/**
 * Flow collections with items (`[a, b]`, `{a: b}`) allowed in what the YAML library reads:
 * the writer makes none (only `[]` for an empty list), and the library spends about 500
 * bytes of memory per byte of a long one.
 */
const MAX_FLOW_COLLECTIONS = 64;

/** Items checked between two turns of the event loop. */
const ITEMS_PER_TURN = 20_000;

/** `items.map(fn)`, letting the event loop turn every ITEMS_PER_TURN items. */
async function mapInTurns<T, U>(items: T[], fn: (item: T, index: number) => U): Promise<U[]> {
  const out: U[] = [];
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % ITEMS_PER_TURN === 0) await setImmediate();
    out.push(fn(items[i]!, i));
  }
  return out;
}

function notLayout(what: string): PayloadError {
  return new PayloadError('AG_TOC_INVALID', `the TOC ${what}, which is not in the writer's layout`, { hint: 'build the file with airgap build (docs/format.md, section 4.8)' });
}

/**
 * Parses YAML text as the TOC's YAML: YAML 1.2 with the core schema (a `%YAML` directive
 * for another version is refused, never obeyed), no duplicate keys (checked in one pass:
 * the library's own check is quadratic), no complex keys. Throws AG_TOC_INVALID.
 */
function parseTocYaml(text: string): Document.Parsed {
  let flows = 0;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (text[i + 1] !== ']' && ++flows > MAX_FLOW_COLLECTIONS) throw notLayout('has many flow sequences');
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (text[i + 1] !== '}' && ++flows > MAX_FLOW_COLLECTIONS) throw notLayout('has many flow mappings');
  const doc = parseDocument(text, { schema: 'core', version: '1.2', uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) throw new PayloadError('AG_TOC_INVALID', `the TOC is not valid YAML: ${doc.errors[0]!.message}`);
  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2') {
    throw new PayloadError('AG_TOC_INVALID', `the TOC says it is YAML ${doc.directives.yaml.version}; it must be YAML 1.2`);
  }
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) throw new PayloadError('AG_TOC_INVALID', 'the TOC has a mapping key that is not a plain value');
        if (seen.has(pair.key.value)) throw new PayloadError('AG_TOC_INVALID', `the TOC is not valid YAML: Map keys must be unique ('${String(pair.key.value).slice(0, 60)}' twice)`);
        seen.add(pair.key.value);
      }
    },
  });
  return doc;
}

/** The document as plain data. Throws AG_TOC_INVALID for aliases. */
function tocData(doc: Document.Parsed): unknown {
  try {
    return doc.toJS({ maxAliasCount: 0 });
  } catch (cause) {
    // yaml throws a ReferenceError for an alias (&a … *a): the writer never makes one.
    throw new PayloadError('AG_TOC_INVALID', `the TOC is not plain YAML: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The TOC as data: its long lists read line by line when they are in the writer's layout,
 * the rest with the YAML library; a small TOC in another layout with the YAML library
 * whole. The rest must be a block mapping with each list's `name: []` at the top level,
 * exactly where the list was: a list header met inside another construct (a quoted
 * string, a flow collection) is not a list of the TOC.
 */
async function readTocData(input: Buffer | TocChunks): Promise<{ value: unknown; fromLayout: boolean }> {
  let bytes: Buffer | undefined;
  if (Buffer.isBuffer(input)) bytes = input;
  else if (input.size <= MAX_FREE_FORM_TOC_BYTES) bytes = await collect(input.chunks, input.size);
  const split = await splitLongLists(bytes ?? (input as TocChunks).chunks);
  if (split && split.rest.length <= MAX_TOC_REST_BYTES) {
    let doc: Document.Parsed | undefined;
    try {
      doc = parseTocYaml(split.rest);
    } catch {
      doc = undefined; // not the layout after all: read whole below, if small enough
    }
    const root = doc?.contents;
    const inPlace =
      isMap(root) &&
      !root.flow &&
      (Object.keys(split.placeholders) as Array<keyof typeof split.placeholders>).every((name) =>
        root.items.some((pair) => isScalar(pair.key) && pair.key.value === name && pair.key.range?.[0] === split.placeholders[name] && isSeq(pair.value) && pair.value.items.length === 0),
      );
    if (doc && inPlace) return { value: { ...(tocData(doc) as Record<string, unknown>), ...split.lists }, fromLayout: true };
  }
  if (!bytes || bytes.length > MAX_FREE_FORM_TOC_BYTES) {
    const size = bytes?.length ?? (input as TocChunks).size;
    throw notLayout(`is ${size} bytes (over ${MAX_FREE_FORM_TOC_BYTES})`);
  }
  return { value: tocData(parseTocYaml(bytes.toString('utf8'))), fromLayout: false };
}

/** All of `chunks` in one Buffer (a small TOC: at most MAX_FREE_FORM_TOC_BYTES). */
async function collect(chunks: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts, size);
}

/** Where a field is, for messages: made only when a message needs it (100,000 items make no strings). */
type Where = string | (() => string);
const whereText = (w: Where) => (typeof w === 'string' ? w : w());

class Checker {
  constructor(private readonly where: string) {}

  fail(path: Where, problem: string): never {
    throw new PayloadError('AG_TOC_INVALID', `${this.where}: ${whereText(path)} ${problem}`);
  }

  object(value: unknown, path: Where): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'must be a mapping');
    return value as Record<string, unknown>;
  }

  array(value: unknown, path: Where): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'must be a list');
    return value;
  }

  string(obj: Record<string, unknown>, key: string, path: Where, pattern?: RegExp): string {
    const value = obj[key];
    if (typeof value !== 'string' || value === '') this.fail(() => `${whereText(path)}.${key}`, 'must be a non-empty string');
    if (pattern && !pattern.test(value)) this.fail(() => `${whereText(path)}.${key}`, `has an invalid value '${value.slice(0, 100)}'`);
    return value;
  }

  size(obj: Record<string, unknown>, key: string, path: Where): number {
    const value = obj[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) this.fail(() => `${whereText(path)}.${key}`, 'must be a byte count');
    return value;
  }
}

/**
 * A TOC's bytes as chunks in order, `size` bytes in all: a large TOC is read again in
 * chunks once its digest and signature were checked on the whole, so that the whole and
 * its parsed items are never in memory together. The iterable must check the digest again
 * when it ends (and throw if the bytes changed): parseToc reads it to its end before it
 * returns a TOC.
 */
export interface TocChunks {
  size: number;
  chunks: AsyncIterable<Buffer>;
}

/**
 * Parses and validates TOC bytes (whole, or TocChunks). Throws PayloadError AG_TOC_INVALID with the path of the
 * first field that is wrong (YAML syntax, duplicate keys, missing fields, bad digests,
 * bad paths, duplicate entries), or when a TOC over MAX_FREE_FORM_TOC_BYTES is not in the
 * writer's layout. Time and memory grow linearly with the entries.
 */
export async function parseToc(input: Buffer | TocChunks): Promise<Toc> {
  const size = Buffer.isBuffer(input) ? input.length : input.size;
  if (size > MAX_TOC_BYTES) throw new PayloadError('AG_TOC_INVALID', `the TOC is larger than ${MAX_TOC_BYTES} bytes`);
  const c = new Checker('TOC');
  const { value, fromLayout } = await readTocData(input);
  const root = c.object(value, 'document');
  if (root.apiVersion !== TOC_API_VERSION) c.fail('apiVersion', `must be ${TOC_API_VERSION}`);
  if (root.kind !== TOC_KIND) c.fail('kind', `must be ${TOC_KIND}`);
  const name = c.string(root, 'name', 'toc', BUNDLE_NAME);
  const version = c.string(root, 'version', 'toc', SEMVER);
  const created = c.string(root, 'created', 'toc', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/);
  // A real instant that a tar header can hold (mtime: 0 to 8^11 - 1 seconds), not 30 February.
  const createdMs = Date.parse(created);
  if (!Number.isFinite(createdMs) || createdMs < 0 || createdMs / 1000 > 8589934591 || new Date(createdMs).toISOString().slice(0, 19) !== created.slice(0, 19)) {
    c.fail('toc.created', `'${created}' is not a date and time between 1970 and 2242`);
  }

  // Items the line reader made have exactly the keys of the type: checked in place, not copied.
  const entries = await mapInTurns(c.array(root.entries, 'entries'), (raw, i): TocEntry => {
    const at = () => `entries[${i}]`;
    const e = c.object(raw, at);
    const path = c.string(e, 'path', at);
    const problem = entryPathProblem(path);
    if (problem) c.fail(() => `${at()}.path '${path}'`, problem);
    const size = c.size(e, 'size', at);
    const sha256 = c.string(e, 'sha256', at, SHA256_HEX);
    return fromLayout ? (e as unknown as TocEntry) : { path, size, sha256 };
  });
  const byPath = new Map<string, TocEntry>();
  for (const e of entries) {
    if (byPath.has(e.path)) c.fail('entries', `list ${e.path} twice`);
    byPath.set(e.path, e);
  }

  const images = c.array(root.images ?? [], 'images').map((raw, i) => {
    const at = `images[${i}]`;
    const o = c.object(raw, at);
    const target = c.string(o, 'target', at);
    const problem = targetProblem(target);
    if (problem) c.fail(`${at}.target '${target}'`, problem);
    const platforms = c.array(o.platforms ?? [], `${at}.platforms`).map((p, j): string => {
      if (typeof p !== 'string') c.fail(`${at}.platforms[${j}]`, 'must be a string');
      return p as string;
    });
    return {
      target,
      source: c.string(o, 'source', at),
      digest: c.string(o, 'digest', at, SHA256_DIGEST),
      mediaType: c.string(o, 'mediaType', at),
      size: c.size(o, 'size', at),
      platforms,
    };
  });
  const artifacts = (key: 'charts' | 'packs') =>
    c.array(root[key] ?? [], key).map((raw, i) => {
      const at = `${key}[${i}]`;
      const o = c.object(raw, at);
      const target = c.string(o, 'target', at);
      const problem = targetProblem(target);
      if (problem) c.fail(`${at}.target '${target}'`, problem);
      return {
        name: c.string(o, 'name', at),
        version: c.string(o, 'version', at),
        target,
        digest: c.string(o, 'digest', at, SHA256_DIGEST),
        size: c.size(o, 'size', at),
        ...(o.source !== undefined ? { source: c.string(o, 'source', at) } : {}),
      };
    });
  const files = await mapInTurns(c.array(root.files ?? [], 'files'), (raw, i): TocFile => {
    const at = () => `files[${i}]`;
    const o = c.object(raw, at);
    const target = c.string(o, 'target', at);
    const problem = entryPathProblem(target);
    if (problem) c.fail(() => `${at()}.target '${target}'`, problem);
    // Only the modes the writer writes: no world-writable, setuid or unreadable file lands on the box.
    const mode = parseInt(c.string(o, 'mode', at, /^0?(?:644|755)$/), 8);
    const path = c.string(o, 'path', at);
    const size = c.size(o, 'size', at);
    const sha256 = c.string(o, 'sha256', at, SHA256_HEX);
    if (!fromLayout) return { target, path, size, sha256, mode };
    o.mode = mode;
    return o as unknown as TocFile;
  });
  // A file's path and sha256 are its entry's too: share the strings (14 MB fewer per 100,000 files).
  for (const f of files) {
    const e = byPath.get(f.path);
    if (e) {
      f.path = e.path;
      if (e.sha256 === f.sha256) f.sha256 = e.sha256;
    }
  }
  let runtime: TocRuntime | undefined;
  if (root.runtime !== undefined) {
    const o = c.object(root.runtime, 'runtime');
    runtime = { node: c.string(o, 'node', 'runtime', /^v\d{1,4}\.\d{1,4}\.\d{1,4}$/), platform: c.string(o, 'platform', 'runtime', /^linux-(?:x64|arm64)$/) };
  }
  return { apiVersion: TOC_API_VERSION, kind: TOC_KIND, name, version, created, images, charts: artifacts('charts'), packs: artifacts('packs'), files, entries, ...(runtime ? { runtime } : {}) };
}
