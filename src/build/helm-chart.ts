/**
 * Helm charts exactly as `helm push` writes them (Helm v3.21.4, helm.sh/helm/v3):
 *
 * - Chart.yaml (and requirements.yaml, which Helm's loader decodes into the same
 *   metadata) is read the way pkg/chart/loader/load.go reads it: sigs.k8s.io/yaml over
 *   go-yaml v2 (YAML 1.1: `yes`/`on` are booleans, `010` is octal), then JSON into the
 *   typed `chart.Metadata` of pkg/chart/metadata.go and `chart.Dependency` of
 *   pkg/chart/dependency.go. A number or boolean in a string field becomes the text
 *   sigs.k8s.io/yaml makes of it (`appVersion: 1.10` is "1.1": floats are formatted at
 *   float32 precision); a mapping in a string field, or a string in `deprecated`, is an
 *   error Helm would also give. Unknown keys are ignored, keys match case-insensitively.
 * - `Metadata.Validate` then sanitizes strings (every Unicode space becomes ' ',
 *   non-printable characters go) and checks name, version (Masterminds/semver's loose
 *   NewVersion: `v1.2.3`, `1.2` and `1` pass), type and dependencies.
 * - The config blob is Go's `json.Marshal` of that struct: fields in declaration order,
 *   `omitempty`, map keys sorted by bytes, `<`, `>`, `&` escaped (pkg/registry/client.go
 *   Push). The manifest has no mediaType field and carries the annotations of
 *   pkg/registry/chart.go (title, version with its `+`, description, url, created,
 *   source, authors, then the chart's own annotations except title and version).
 *
 * Pure functions: no file access here (artifacts.ts reads the archive).
 */
import { isMap, isScalar, isSeq, isAlias, parseAllDocuments, type Document, type Node } from 'yaml';
import { BundleError } from '../kit/errors.js';
import { sha256Digest } from '../kit/digest.js';
import { MAX_VERSION_LENGTH } from '../format/names.js';
import { MEDIA_TYPE_HELM_CONFIG, type Descriptor } from '../oci/manifest.js';

/** A maintainer of pkg/chart/metadata.go `Maintainer`. */
export interface HelmMaintainer {
  name?: string;
  email?: string;
  url?: string;
}

/** pkg/chart/dependency.go `Dependency`; `name` and `repository` are always written. */
export interface HelmDependency {
  name: string;
  version?: string;
  repository: string;
  condition?: string;
  tags?: string[];
  enabled?: boolean;
  'import-values'?: unknown[];
  alias?: string;
}

/** pkg/chart/metadata.go `Metadata`: the chart's config blob, after Helm's loader. */
export interface HelmMetadata {
  name?: string;
  home?: string;
  sources?: string[];
  version?: string;
  description?: string;
  keywords?: string[];
  maintainers?: Array<HelmMaintainer | null>;
  icon?: string;
  apiVersion?: string;
  condition?: string;
  tags?: string;
  appVersion?: string;
  deprecated?: boolean;
  annotations?: Record<string, string>;
  kubeVersion?: string;
  dependencies?: Array<HelmDependency | null>;
  type?: string;
}

/** A loaded chart's metadata and what the admin should know (values Helm reads otherwise than written). */
export interface LoadedChartMetadata {
  metadata: HelmMetadata & { name: string; version: string };
  warnings: string[];
}

// ---------------------------------------------------------------------------------------
// go-yaml v2: plain scalars resolved as in its resolve.go (YAML 1.1 booleans, Go number
// prefixes, `_` in numbers, timestamps kept as their text).

type GoValue =
  | { kind: 'str'; value: string }
  | { kind: 'int'; value: bigint }
  | { kind: 'float'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'null' }
  | { kind: 'map'; entries: Array<[GoValue, GoValue]> }
  | { kind: 'seq'; items: GoValue[] };

const BOOLS = new Map<string, boolean>([
  ...['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'].map((s) => [s, true] as const),
  ...['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF'].map((s) => [s, false] as const),
]);
const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);
const SPECIAL_FLOATS = new Map<string, number>([
  ...['.nan', '.NaN', '.NAN'].map((s) => [s, Number.NaN] as const),
  ...['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'].map((s) => [s, Number.POSITIVE_INFINITY] as const),
  ...['-.inf', '-.Inf', '-.INF'].map((s) => [s, Number.NEGATIVE_INFINITY] as const),
]);
const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
/** Go's strconv.ParseFloat accepts these (besides hex floats, which go-yaml's regex keeps out). */
const GO_DECIMAL_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** Go's strconv.ParseInt/ParseUint with base 0: sign, then 0x, 0o, 0b or a leading 0 (octal). */
function goParseInteger(text: string): bigint | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (!m) return undefined;
  const digits = m[2]!;
  let value: bigint;
  if (/^0[xXoObB]/.test(digits)) value = BigInt(`0${digits[1]!.toLowerCase()}${digits.slice(2)}`);
  else if (digits.length > 1 && digits.startsWith('0')) value = BigInt(`0o${digits.slice(1)}`);
  else value = BigInt(digits);
  return m[1] === '-' ? -value : value;
}

/** A plain scalar as go-yaml v2 resolves it into an interface{}. */
export function resolvePlainScalar(text: string): GoValue {
  if (BOOLS.has(text)) return { kind: 'bool', value: BOOLS.get(text)! };
  if (NULLS.has(text)) return { kind: 'null' };
  if (SPECIAL_FLOATS.has(text)) return { kind: 'float', value: SPECIAL_FLOATS.get(text)! };
  const first = text[0]!;
  if (first === '.') {
    if (GO_DECIMAL_FLOAT.test(text)) return { kind: 'float', value: Number(text) };
    return { kind: 'str', value: text };
  }
  if (first === '+' || first === '-' || (first >= '0' && first <= '9')) {
    // A timestamp (YYYY-...) stays its text in an interface{}: "for backward compatibility".
    if (/^\d{4}-/.test(text) && isGoYamlTimestamp(text)) return { kind: 'str', value: text };
    const plain = text.replaceAll('_', '');
    const int = goParseInteger(plain);
    if (int !== undefined && int >= INT64_MIN && int <= UINT64_MAX) return { kind: 'int', value: int };
    if (YAML_STYLE_FLOAT.test(plain)) return { kind: 'float', value: Number(plain) };
    if (/^-?0b[01]+$/.test(plain)) {
      const v = BigInt(`0b${plain.replace(/^-?0b/, '')}`) * (plain.startsWith('-') ? -1n : 1n);
      if (v >= INT64_MIN && v <= INT64_MAX) return { kind: 'int', value: v };
    }
  }
  return { kind: 'str', value: text };
}

/** go-yaml v2's allowed timestamp formats (resolve.go parseTimestamp). */
function isGoYamlTimestamp(text: string): boolean {
  return /^\d{4}-\d{1,2}-\d{1,2}(?:(?:[Tt]| +)\d{1,2}:\d{1,2}:\d{1,2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?)?$/.test(text);
}

/** Values one Chart.yaml may expand to through aliases: a "billion laughs" file stops here. */
const MAX_YAML_VALUES = 100_000;

/** The YAML document as go-yaml v2 decodes it into interface{} values. */
function toGoValue(node: Node | null | undefined, doc: Document, budget: { left: number }, depth = 0): GoValue {
  if (--budget.left < 0) throw new ChartYamlError(`expands to more than ${MAX_YAML_VALUES} values (aliases)`);
  if (depth > 64) throw new ChartYamlError('is nested more than 64 levels deep');
  if (node === null || node === undefined) return { kind: 'null' };
  if (isAlias(node)) return toGoValue(node.resolve(doc), doc, budget, depth + 1);
  if (isScalar(node)) {
    const text = typeof node.value === 'string' ? node.value : '';
    if (node.type !== 'PLAIN' || node.tag === 'tag:yaml.org,2002:str') return { kind: 'str', value: text };
    return resolvePlainScalar(text);
  }
  if (isSeq(node)) return { kind: 'seq', items: node.items.map((item) => toGoValue(item as Node, doc, budget, depth + 1)) };
  if (isMap(node)) {
    const entries: Array<[GoValue, GoValue]> = [];
    for (const pair of node.items) {
      const key = toGoValue(pair.key as Node, doc, budget, depth + 1);
      const value = toGoValue(pair.value as Node, doc, budget, depth + 1);
      if (key.kind === 'str' && key.value === '<<' && isScalar(pair.key) && pair.key.type === 'PLAIN') {
        // A merge key: the merged mapping's entries, as if written here.
        for (const merged of value.kind === 'seq' ? value.items : [value]) if (merged.kind === 'map') entries.push(...merged.entries);
        continue;
      }
      entries.push([key, value]);
    }
    return { kind: 'map', entries };
  }
  throw new ChartYamlError('has a YAML node of an unknown kind');
}

// ---------------------------------------------------------------------------------------
// sigs.k8s.io/yaml: scalars into string targets, and Go's strconv.FormatFloat(v, 'g', -1, 32).

/** Go's strconv.FormatFloat(v, 'g', -1, 32): the shortest text that reads back as the same float32. */
export function formatFloat32(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  const f = Math.fround(v);
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  if (!Number.isFinite(f)) return f > 0 ? '+Inf' : '-Inf';
  let digits = '';
  let exp = 0;
  for (let p = 1; p <= 9; p++) {
    const s = Math.abs(f).toExponential(p - 1);
    if (Math.fround(Number(s)) === Math.abs(f)) {
      const [mantissa, e] = s.split('e');
      digits = mantissa!.replace('.', '');
      exp = Number(e);
      break;
    }
  }
  digits = digits.replace(/0+$/, '') || '0';
  const sign = f < 0 ? '-' : '';
  // %e when the exponent is < -4 or >= 6 (shortest: precision 6 decides), else %f.
  if (exp < -4 || exp >= 6) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : String(Math.abs(exp));
    return `${sign}${mantissa}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp >= 0) {
    const intPart = digits.length > exp + 1 ? digits.slice(0, exp + 1) : digits.padEnd(exp + 1, '0');
    const frac = digits.length > exp + 1 ? digits.slice(exp + 1) : '';
    return `${sign}${intPart}${frac ? `.${frac}` : ''}`;
  }
  return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
}

const KIND_WORD: Record<GoValue['kind'], string> = { str: 'string', int: 'number', float: 'number', bool: 'bool', null: 'null', map: 'object', seq: 'array' };

class ChartYamlError extends Error {}

/** A scalar into a Go string field, as sigs.k8s.io/yaml converts it; undefined for null. */
function asString(v: GoValue, field: string, notes: string[]): string | undefined {
  switch (v.kind) {
    case 'str':
      return v.value;
    case 'int':
      notes.push(`${field}: ${v.value} is a number in YAML; Helm reads it as the string "${v.value}" (quote it to be sure)`);
      return String(v.value);
    case 'float': {
      const text = formatFloat32(v.value);
      notes.push(`${field}: a number in YAML; Helm reads it as the string "${text}" (quote the value if that is not what you meant)`);
      return text;
    }
    case 'bool':
      notes.push(`${field}: ${v.value} is a boolean in YAML (yes, no, on and off are too); Helm reads it as the string "${v.value}"`);
      return v.value ? 'true' : 'false';
    case 'null':
      return undefined;
    default:
      throw new ChartYamlError(`${field} must be a string, not ${v.kind === 'map' ? 'a mapping' : 'a list'} (Helm: cannot unmarshal ${KIND_WORD[v.kind]} into a string field)`);
  }
}

function asBool(v: GoValue, field: string): boolean | undefined {
  if (v.kind === 'null') return undefined;
  if (v.kind === 'bool') return v.value;
  throw new ChartYamlError(`${field} must be true or false, not ${v.kind === 'str' ? `the string '${v.value}'` : `a ${KIND_WORD[v.kind]}`} (Helm: cannot unmarshal ${KIND_WORD[v.kind]} into a bool field)`);
}

function asStringList(v: GoValue, field: string, notes: string[]): string[] | undefined {
  if (v.kind === 'null') return undefined;
  if (v.kind !== 'seq') throw new ChartYamlError(`${field} must be a list of strings, not a ${KIND_WORD[v.kind]}`);
  return v.items.map((item, i) => asString(item, `${field}[${i}]`, notes) ?? '');
}

/** A map key as sigs.k8s.io/yaml makes it a JSON object key. */
function keyText(k: GoValue, field: string): string {
  switch (k.kind) {
    case 'str':
      return k.value;
    case 'int':
      return String(k.value);
    case 'float':
      return formatFloat32(k.value);
    case 'bool':
      return k.value ? 'true' : 'false';
    default:
      throw new ChartYamlError(`${field} has a key that is not a string`);
  }
}

/** A value of an `[]interface{}` field as Go's json round trip leaves it (numbers are float64). */
function asAny(v: GoValue, field: string): unknown {
  switch (v.kind) {
    case 'str':
      return v.value;
    case 'int':
      return Number(v.value);
    case 'float':
      if (!Number.isFinite(v.value)) throw new ChartYamlError(`${field}: ${v.value} cannot be written as JSON (Helm: unsupported value)`);
      return v.value;
    case 'bool':
      return v.value;
    case 'null':
      return null;
    case 'seq':
      return v.items.map((item, i) => asAny(item, `${field}[${i}]`));
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, value] of v.entries) out[keyText(k, field)] = asAny(value, `${field}.${keyText(k, field)}`);
      return out;
    }
  }
}

/**
 * Finds the struct field a key goes to, as encoding/json does: an exact match, else the
 * first field whose name matches case-insensitively.
 */
function fieldFor(key: string, fields: readonly string[]): string | undefined {
  if (fields.includes(key)) return key;
  const lower = key.toLowerCase();
  return fields.find((f) => f.toLowerCase() === lower);
}

function asMapping(v: GoValue, field: string): Array<[string, GoValue]> {
  if (v.kind !== 'map') throw new ChartYamlError(`${field} must be a mapping, not a ${KIND_WORD[v.kind]}`);
  return v.entries.map(([k, value]) => [keyText(k, field), value]);
}

const MAINTAINER_FIELDS = ['name', 'email', 'url'] as const;
type StringField = 'name' | 'home' | 'version' | 'description' | 'icon' | 'apiVersion' | 'condition' | 'tags' | 'appVersion' | 'kubeVersion' | 'type';
/** Helm v3's Dependency (v3.21.4 has no export-values: that is Helm 4's; an unknown key is ignored, as Helm v3 ignores it). */
const DEPENDENCY_FIELDS = ['name', 'version', 'repository', 'condition', 'tags', 'enabled', 'import-values', 'alias'] as const;
/** pkg/chart/metadata.go `Metadata`, in declaration order (the order json.Marshal writes). */
const METADATA_FIELDS = ['name', 'home', 'sources', 'version', 'description', 'keywords', 'maintainers', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'deprecated', 'annotations', 'kubeVersion', 'dependencies', 'type'] as const;

function decodeMaintainer(v: GoValue, at: string, notes: string[]): HelmMaintainer | null {
  if (v.kind === 'null') return null;
  const out: HelmMaintainer = {};
  for (const [key, value] of asMapping(v, at)) {
    const f = fieldFor(key, MAINTAINER_FIELDS) as (typeof MAINTAINER_FIELDS)[number] | undefined;
    if (!f) continue;
    const s = asString(value, `${at}.${f}`, notes);
    if (s === undefined) delete out[f];
    else out[f] = s;
  }
  return out;
}

function decodeDependency(v: GoValue, at: string, notes: string[]): HelmDependency | null {
  if (v.kind === 'null') return null;
  const out: HelmDependency = { name: '', repository: '' };
  for (const [key, value] of asMapping(v, at)) {
    const f = fieldFor(key, DEPENDENCY_FIELDS);
    if (!f) continue;
    const where = `${at}.${f}`;
    if (f === 'tags') {
      const list = asStringList(value, where, notes);
      if (list === undefined) delete out.tags;
      else out.tags = list;
    } else if (f === 'enabled') {
      const b = asBool(value, where);
      if (b === undefined) delete out.enabled;
      else out.enabled = b;
    } else if (f === 'import-values') {
      if (value.kind === 'null') delete out[f];
      else if (value.kind !== 'seq') throw new ChartYamlError(`${where} must be a list`);
      else out[f] = value.items.map((item, i) => asAny(item, `${where}[${i}]`));
    } else {
      const s = asString(value, where, notes);
      if (f === 'name' || f === 'repository') out[f] = s ?? out[f];
      else if (s === undefined) delete out[f as 'version' | 'condition' | 'alias'];
      else out[f as 'version' | 'condition' | 'alias'] = s;
    }
  }
  return out;
}

/** Decodes one YAML file into `meta` as json.Unmarshal into an existing struct does. */
function decodeInto(meta: HelmMetadata, text: string, file: string, notes: string[]): void {
  const docs = parseAllDocuments(text.replace(/^\uFEFF/, ''), { schema: 'failsafe', uniqueKeys: false, prettyErrors: false });
  const doc = Array.isArray(docs) ? docs[0] : undefined;
  if (!doc) return;
  if (doc.errors.length) throw new ChartYamlError(`${file} is not valid YAML: ${doc.errors[0]!.message}`);
  const root = toGoValue(doc.contents, doc, { left: MAX_YAML_VALUES });
  if (root.kind === 'null') return;
  for (const [key, value] of asMapping(root, file)) {
    const f = fieldFor(key, METADATA_FIELDS);
    if (!f) continue;
    switch (f) {
      case 'sources':
      case 'keywords': {
        const list = asStringList(value, f, notes);
        if (list !== undefined) meta[f] = list;
        break;
      }
      case 'deprecated': {
        const b = asBool(value, f);
        if (b !== undefined) meta.deprecated = b;
        break;
      }
      case 'maintainers':
        if (value.kind === 'null') break;
        if (value.kind !== 'seq') throw new ChartYamlError(`maintainers must be a list, not a ${KIND_WORD[value.kind]}`);
        meta.maintainers = value.items.map((item, i) => decodeMaintainer(item, `maintainers[${i}]`, notes));
        break;
      case 'dependencies':
        if (value.kind === 'null') break;
        if (value.kind !== 'seq') throw new ChartYamlError(`dependencies must be a list, not a ${KIND_WORD[value.kind]}`);
        meta.dependencies = value.items.map((item, i) => decodeDependency(item, `dependencies[${i}]`, notes));
        break;
      case 'annotations': {
        if (value.kind === 'null') break;
        // json.Unmarshal into an existing map adds to it.
        const annotations = meta.annotations ?? {};
        for (const [k, v] of asMapping(value, 'annotations')) annotations[k] = asString(v, `annotations.${k}`, []) ?? '';
        meta.annotations = annotations;
        break;
      }
      default: {
        const s = asString(value, f, f === 'version' || f === 'appVersion' || f === 'kubeVersion' ? notes : []);
        if (s !== undefined) meta[f as StringField] = s;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Metadata.Validate: sanitizeString, and the checks Helm makes before it pushes.

/** Go's unicode.IsSpace. */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/gu;
/** Go's unicode.IsPrint besides the ASCII space: letters, marks, numbers, punctuation, symbols. */
const GO_NOT_PRINT = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/gu;

/** pkg/chart/metadata.go sanitizeString: Unicode spaces become ' ', non-printable characters go. */
export function sanitizeString(s: string): string {
  return s.replace(GO_SPACE, ' ').replace(GO_NOT_PRINT, '');
}

/**
 * Masterminds/semver v3 NewVersion (loose, as Helm uses it): optional lower-case `v`, one
 * to three numbers, a pre-release and build metadata of dot-separated [0-9A-Za-z-]
 * identifiers; a numeric pre-release identifier may not start with 0.
 */
export function isHelmVersion(version: string): boolean {
  const m = /^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$/.exec(version);
  if (!m) return false;
  for (const part of [m[1], m[2]?.slice(1), m[3]?.slice(1)]) if (part !== undefined && BigInt(part) > UINT64_MAX) return false;
  if (m[5] !== undefined && m[5].split('.').some((id) => /^[0-9]+$/.test(id) && id.length > 1 && id.startsWith('0'))) return false;
  return true;
}

const ALIAS = /^[a-zA-Z0-9_-]+$/;

function validate(meta: HelmMetadata): asserts meta is HelmMetadata & { name: string; version: string } {
  const clean = (s: string | undefined) => (s === undefined ? undefined : sanitizeString(s));
  for (const f of ['name', 'description', 'home', 'icon', 'condition', 'tags', 'appVersion', 'kubeVersion'] as const) {
    if (meta[f] !== undefined) meta[f] = clean(meta[f])!;
  }
  if (meta.sources) meta.sources = meta.sources.map((s) => sanitizeString(s));
  if (meta.keywords) meta.keywords = meta.keywords.map((s) => sanitizeString(s));
  if (!meta.apiVersion) throw new ChartYamlError('apiVersion is required');
  if (!meta.name) throw new ChartYamlError('name is required');
  if (meta.name === '.' || meta.name === '..') throw new ChartYamlError(`name '${meta.name}' is not allowed`);
  if (meta.name.includes('/')) throw new ChartYamlError(`name '${meta.name}' is invalid`);
  if (!meta.version) throw new ChartYamlError('version is required');
  if (!isHelmVersion(meta.version)) throw new ChartYamlError(`version '${meta.version}' is invalid (Helm takes semantic versions such as 1.2.3, v1.2.3 or 1.2)`);
  if (meta.type !== undefined && meta.type !== '' && meta.type !== 'application' && meta.type !== 'library') throw new ChartYamlError('type must be application or library');
  for (const m of meta.maintainers ?? []) {
    if (m === null) throw new ChartYamlError('maintainers must not contain empty or null nodes');
    for (const f of MAINTAINER_FIELDS) if (m[f] !== undefined) m[f] = sanitizeString(m[f]);
  }
  const seen = new Set<string>();
  for (const d of meta.dependencies ?? []) {
    if (d === null) throw new ChartYamlError('dependencies must not contain empty or null nodes');
    d.name = sanitizeString(d.name);
    d.repository = sanitizeString(d.repository);
    for (const f of ['version', 'condition'] as const) if (d[f] !== undefined) d[f] = sanitizeString(d[f]);
    if (d.tags) d.tags = d.tags.map((t) => sanitizeString(t));
    if (d.alias !== undefined && d.alias !== '' && !ALIAS.test(d.alias)) throw new ChartYamlError(`dependency '${d.name}' has disallowed characters in the alias`);
    const key = d.alias ? d.alias : d.name;
    if (seen.has(key)) throw new ChartYamlError(`more than one dependency with name or alias '${key}'`);
    seen.add(key);
  }
}

/**
 * Reads a chart's metadata as Helm's loader does: Chart.yaml, then requirements.yaml
 * over it when the archive has one, apiVersion v1 when unset, then Validate. `where`
 * names the archive in messages. Returns the metadata and warnings about values Helm
 * reads otherwise than they look (an unquoted `appVersion: 1.10` is "1.1"). Throws
 * BundleError AG_CHART with Helm's reason when Helm could not load the chart either.
 */
export function loadChartMetadata(chartYaml: string, requirementsYaml: string | undefined, where: string): LoadedChartMetadata {
  const meta: HelmMetadata = {};
  const notes: string[] = [];
  try {
    decodeInto(meta, chartYaml, 'Chart.yaml', notes);
    if (!meta.apiVersion) meta.apiVersion = 'v1';
    if (requirementsYaml !== undefined) decodeInto(meta, requirementsYaml, 'requirements.yaml', notes);
    validate(meta);
  } catch (err) {
    if (err instanceof ChartYamlError) throw new BundleError('AG_CHART', `${where}: Chart.yaml: ${err.message}`, { hint: 'Helm could not load this chart either; fix Chart.yaml and package it again (helm package)' });
    throw new BundleError('AG_CHART', `${where}: Chart.yaml cannot be read: ${(err as Error).message}`, { cause: err });
  }
  if (meta.version.length > MAX_VERSION_LENGTH) throw new BundleError('AG_CHART', `${where}: version '${meta.version}' is longer than ${MAX_VERSION_LENGTH} characters (an OCI tag's limit)`);
  return { metadata: meta, warnings: notes.map((n) => `${where}: ${n}`) };
}

// ---------------------------------------------------------------------------------------
// Go's encoding/json: the bytes json.Marshal writes.

/** A string as Go's json.Marshal writes it (HTML-safe: <, >, & escaped; U+2028/2029 too). */
export function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&' || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd'; // a lone surrogate: invalid UTF-8 to Go
    else out += ch;
  }
  return `${out}"`;
}

/** Sorts keys as Go sorts map keys: by their UTF-8 bytes. */
function goKeyOrder(keys: string[]): string[] {
  return keys.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/** Any JSON value as Go's json.Marshal writes an interface{} (map keys sorted). */
function goJsonAny(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(goJsonAny).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${goKeyOrder(Object.keys(o)).map((k) => `${goJsonString(k)}:${goJsonAny(o[k])}`).join(',')}}`;
}

/** Go's omitempty: "", false, and empty lists and maps are left out. */
function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}

/** A struct: `fields` in declaration order, each [name, value, omitempty]; strings as Go writes them. */
function goJsonStruct(fields: Array<[string, unknown, boolean]>): string {
  const parts: string[] = [];
  for (const [name, value, omitEmpty] of fields) {
    if (omitEmpty && isEmpty(value)) continue;
    parts.push(`${goJsonString(name)}:${goJsonAny(value ?? '')}`);
  }
  return `{${parts.join(',')}}`;
}

function maintainerJson(m: HelmMaintainer | null): string {
  return m === null ? 'null' : goJsonStruct(MAINTAINER_FIELDS.map((f) => [f, m[f], true]));
}

function dependencyJson(d: HelmDependency | null): string {
  if (d === null) return 'null';
  return goJsonStruct(DEPENDENCY_FIELDS.map((f) => [f, d[f], f !== 'name' && f !== 'repository']));
}

/** The chart's config blob: json.Marshal of Helm's Metadata, byte for byte. */
export function helmConfigJson(meta: HelmMetadata): Buffer {
  const parts: string[] = [];
  for (const f of METADATA_FIELDS) {
    const value = meta[f];
    if (isEmpty(value)) continue;
    const json = f === 'maintainers' ? `[${meta.maintainers!.map(maintainerJson).join(',')}]` : f === 'dependencies' ? `[${meta.dependencies!.map(dependencyJson).join(',')}]` : goJsonAny(value);
    parts.push(`${goJsonString(f)}:${json}`);
  }
  return Buffer.from(`{${parts.join(',')}}`, 'utf8');
}

/**
 * The manifest annotations `helm push` writes (pkg/registry/chart.go
 * generateOCIAnnotations): description, title, version (with its `+`), url, created,
 * source (the first of `sources`), authors (`Name (email)`, joined by ", "), each only
 * when not blank; then the chart's annotations over them, except title and version.
 * `created` is RFC 3339 without fractions (Helm: the archive's mtime).
 */
export function helmAnnotations(meta: HelmMetadata & { name: string; version: string }, created: string): Record<string, string> {
  const out: Record<string, string> = {};
  const add = (key: string, value: string | undefined) => {
    if (value !== undefined && value.trim() !== '') out[key] = value;
  };
  add('org.opencontainers.image.description', meta.description);
  add('org.opencontainers.image.title', meta.name);
  add('org.opencontainers.image.version', meta.version);
  add('org.opencontainers.image.url', meta.home);
  add('org.opencontainers.image.created', created);
  if (meta.sources?.length) add('org.opencontainers.image.source', meta.sources[0]);
  if (meta.maintainers?.length) {
    const authors = meta.maintainers.map((m) => `${m?.name ?? ''}${m?.email ? ` (${m.email})` : ''}`).join(', ');
    add('org.opencontainers.image.authors', authors);
  }
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    if (key === 'org.opencontainers.image.version' || key === 'org.opencontainers.image.title') continue;
    out[key] = value;
  }
  return out;
}

/** RFC 3339 in UTC without fractions, as Go's time.RFC3339 writes a UTC time. */
export function rfc3339Seconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The manifest of a chart as `helm push` writes it: `{"schemaVersion":2,"config":…,
 * "layers":[…],"annotations":{…}}`, compact, no mediaType field (it goes in the
 * descriptor and Content-Type), annotation keys in Go's order.
 */
export function helmManifest(config: Descriptor, layers: Descriptor[], annotations: Record<string, string>): Buffer {
  const descriptor = (d: Descriptor) => `{"mediaType":${goJsonString(d.mediaType)},"digest":${goJsonString(d.digest)},"size":${d.size}}`;
  const notes = Object.keys(annotations).length ? `,"annotations":${goJsonAny(annotations)}` : '';
  return Buffer.from(`{"schemaVersion":2,"config":${descriptor(config)},"layers":[${layers.map(descriptor).join(',')}]${notes}}`, 'utf8');
}

/** The config descriptor of a chart's config blob. */
export function helmConfigDescriptor(config: Buffer): Descriptor {
  return { mediaType: MEDIA_TYPE_HELM_CONFIG, digest: sha256Digest(config), size: config.length };
}
