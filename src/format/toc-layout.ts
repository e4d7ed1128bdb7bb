/**
 * The writer's layout of the TOC's two long lists, `files` and `entries` (docs/format.md,
 * section 4.8): one item per group of lines, keys in a fixed order, every value on its
 * key's line, two-space indents. These are the bytes `yaml`'s stringify makes for them
 * (a test holds the two equal), written and read here line by line, so that a TOC of
 * 100,000 files costs milliseconds and a few MB instead of a YAML tree of a GB.
 *
 * Values that are plain, safe strings or decimal byte counts are taken as they are; any
 * other value (quoted, or plain but special) goes through the YAML library in the same
 * context (`key: value`), so both readings agree. Anything else in these sections (a
 * comment, a blank line, another key order, a block scalar, an anchor) is not this layout:
 * `splitLongLists` then returns undefined and the caller decides.
 */
import { setImmediate } from 'node:timers/promises';
import { parseDocument, stringify } from 'yaml';

/** The long lists and their keys, in the writer's order. */
export const LONG_LISTS = {
  files: ['target', 'path', 'size', 'sha256', 'mode'],
  entries: ['path', 'size', 'sha256'],
} as const;

export type LongListName = keyof typeof LONG_LISTS;

/**
 * A string YAML writes and reads plain, unchanged: letters, digits and `_./+@=-` only,
 * starting with a letter, digit, `_` or `/` (no indicator, quote, space, `#` or `:`), and
 * not a number, boolean or null of YAML 1.2's core schema (the schema `yaml` uses).
 */
const PLAIN = /^[A-Za-z0-9_/][A-Za-z0-9_./+@=-]*$/;
const CORE_NON_STRING = /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[Tt]rue|TRUE|[Ff]alse|FALSE|[Nn]ull|NULL)$/;
const BYTE_COUNT = /^(?:0|[1-9][0-9]{0,15})$/;
const QUOTED_VERBATIM = /^"[^"\\]*"$/;
/** Characters that never appear on a line of this layout: YAML's line breaks and the other C0 controls but tab. */
const NOT_IN_LAYOUT = /[\x00-\x08\x0a-\x1f]/;

function isSafePlain(value: string): boolean {
  return PLAIN.test(value) && !CORE_NON_STRING.test(value);
}

const scalarCache = new Map<string, string>();

/** `value` as YAML writes it after `key: ` in a block mapping (one line). */
export function emitScalar(value: string | number): string {
  if (typeof value === 'number') return String(value);
  if (isSafePlain(value)) return value;
  const cached = scalarCache.get(value);
  if (cached !== undefined) return cached;
  const text = stringify({ k: value }, { lineWidth: 0 });
  // Entry paths and targets hold no control characters, so YAML writes them on one line;
  // a multi-line value would need YAML's block forms, which this layout does not use.
  if (!text.startsWith('k: ') || text.indexOf('\n') !== text.length - 1) throw new Error(`cannot write '${value.slice(0, 60)}' on one line`);
  const out = text.slice(3, -1);
  if (scalarCache.size < 1024) scalarCache.set(value, out);
  return out;
}

/** Writes one long list (`name:` and its items, or `name: []`), ending with a newline. */
export function emitLongList(name: LongListName, items: ReadonlyArray<Record<string, string | number>>): string {
  if (!items.length) return `${name}: []\n`;
  const keys = LONG_LISTS[name];
  let out = `${name}:\n`;
  for (const item of items) {
    for (let i = 0; i < keys.length; i++) out += `${i === 0 ? '  - ' : '    '}${keys[i]}: ${emitScalar(item[keys[i]!]!)}\n`;
  }
  return out;
}

/** Reads one value as the YAML library reads `k: <text>`, or undefined when that is not one plain value. */
function yamlScalar(text: string): unknown {
  const first = text[0];
  if (first === undefined || '&*!|>%@`#[{'.includes(first)) return undefined;
  const doc = parseDocument(`k: ${text}\n`, { schema: 'core', version: '1.2', uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) return undefined;
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 0 });
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === 'k' ? (value as { k: unknown }).k : undefined;
}

/**
 * Reads one value of the layout: only the exact text the writer makes for it (a safe
 * plain string, a decimal byte count, or what `emitScalar` writes for the string YAML
 * reads), else undefined. Being exact keeps the layout one reading of the bytes, and a
 * value in any other form costs nothing more than the one that says it is not the layout.
 */
function decodeScalar(text: string): string | number | undefined {
  if (isSafePlain(text)) return text;
  if (BYTE_COUNT.test(text)) return Number(text);
  // A double-quoted value without escapes is its content; any other goes through YAML.
  const value = QUOTED_VERBATIM.test(text) ? text.slice(1, -1) : yamlScalar(text);
  return typeof value === 'string' && emitScalar(value) === text ? value : undefined;
}

export interface SplitToc {
  /** The TOC with each long list replaced by `name: []`: what is left for the YAML library. */
  rest: string;
  /** Both long lists, as the YAML library would read them (values not yet checked); empty when written `name: []`. */
  lists: Record<LongListName, Array<Record<string, unknown>>>;
  /** Where each list's `name: []` line starts in `rest` (characters), for the caller to find it there as a top-level key. */
  placeholders: Record<LongListName, number>;
}

const LIST_HEADERS = { files: Buffer.from('files:'), entries: Buffer.from('entries:') };
const EMPTY_LISTS = { files: Buffer.from('files: []'), entries: Buffer.from('entries: []') };
/** Each line's bytes before its value: `  - key: ` for an item's first key, `    key: ` after. */
const LINE_PREFIXES = Object.fromEntries(
  Object.entries(LONG_LISTS).map(([name, keys]) => [name, keys.map((key, i) => Buffer.from(`${i === 0 ? '  - ' : '    '}${key}: `))]),
) as Record<LongListName, Buffer[]>;

/** Lines read between two turns of the event loop: a 100,000-file TOC must not stall a server. */
const LINES_PER_TURN = 20_000;

/**
 * Takes the long lists out of a TOC in the writer's layout, reading its bytes line by line
 * (each line decoded on its own, so no value keeps the whole text alive) and letting the
 * event loop turn every LINES_PER_TURN lines. Resolves undefined when a long list is there
 * but not in this layout (the caller may then read the TOC with the YAML library, or
 * refuse it). The caller must check that each list taken out comes back as a top-level
 * empty list when `rest` is read: a list header met inside another construct is not a
 * list of the TOC.
 *
 * `input` is the TOC whole, or its chunks in order (a large TOC read again after its
 * digest and signature were checked on the whole: the chunk reader checks the digest
 * again at its end, so a result is only made from bytes that were all read). A line that
 * spans chunks is joined once its end is found: the cost stays linear in the bytes.
 */
export async function splitLongLists(input: Buffer | AsyncIterable<Buffer>): Promise<SplitToc | undefined> {
  const lists: Partial<SplitToc['lists']> = {};
  const placeholders: Partial<SplitToc['placeholders']> = {};
  const rest: string[] = [];
  let restLength = 0;
  const keep = (line: string) => {
    rest.push(line);
    restLength += line.length + 1;
  };
  const chunks = Buffer.isBuffer(input) ? undefined : input[Symbol.asyncIterator]();
  /** The bytes being read: the whole TOC, or the current chunk with the start of its first line before it. */
  let bytes = Buffer.isBuffer(input) ? input : Buffer.alloc(0);
  let pos = 0;
  let end = -1;
  let count = 0;
  /**
   * Moves to the next line: `pos`..`end` of `bytes` (without the newline); false at the
   * end of the bytes. A line not ended in `bytes` is completed from the next chunks.
   */
  const nextLine = async (): Promise<boolean> => {
    pos = end + 1;
    if (++count % LINES_PER_TURN === 0) await setImmediate();
    end = bytes.indexOf(0x0a, pos);
    if (end !== -1) return true;
    const parts = [bytes.subarray(pos)];
    for (;;) {
      const next = chunks && (await chunks.next());
      if (!next || next.done) break;
      const nl = next.value.indexOf(0x0a);
      parts.push(next.value);
      if (nl !== -1) {
        bytes = parts.length === 2 && parts[0]!.length === 0 ? next.value : Buffer.concat(parts);
        pos = 0;
        end = bytes.length - next.value.length + nl;
        return true;
      }
    }
    bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    pos = 0;
    end = bytes.length;
    return bytes.length > 0;
  };
  const lineIs = (text: Buffer) => end - pos === text.length && text.compare(bytes, pos, end) === 0;
  const place = (name: LongListName, items: Array<Record<string, unknown>>): boolean => {
    if (lists[name]) return false;
    lists[name] = items;
    placeholders[name] = restLength;
    keep(`${name}: []`);
    return true;
  };
  let more = await nextLine();
  while (more) {
    const empty = lineIs(EMPTY_LISTS.files) ? 'files' : lineIs(EMPTY_LISTS.entries) ? 'entries' : undefined;
    if (empty) {
      if (!place(empty, [])) return undefined;
      more = await nextLine();
      continue;
    }
    const name = lineIs(LIST_HEADERS.files) ? 'files' : lineIs(LIST_HEADERS.entries) ? 'entries' : undefined;
    if (!name) {
      keep(bytes.toString('utf8', pos, end));
      more = await nextLine();
      continue;
    }
    const keys = LONG_LISTS[name];
    const prefixes = LINE_PREFIXES[name];
    const items: Array<Record<string, unknown>> = [];
    let item: Record<string, unknown> = {};
    let k = 0;
    for (more = await nextLine(); more && bytes[pos] === 0x20; more = await nextLine()) {
      const prefix = prefixes[k]!;
      if (end - pos < prefix.length || prefix.compare(bytes, pos, pos + prefix.length) !== 0) return undefined;
      // Each value decoded on its own: no string of the whole line (or TOC) stays alive behind it.
      const valueText = bytes.toString('utf8', pos + prefix.length, end);
      if (NOT_IN_LAYOUT.test(valueText)) return undefined;
      const value = decodeScalar(valueText);
      if (value === undefined) return undefined;
      item[keys[k]!] = value;
      if (++k === keys.length) {
        items.push(item);
        item = {};
        k = 0;
      }
    }
    if (k !== 0 || !items.length || !place(name, items)) return undefined;
  }
  // Both lists, each once, in the layout (a list written otherwise leaves its name out).
  if (!lists.files || !lists.entries) return undefined;
  return { rest: `${rest.join('\n')}\n`, lists: lists as SplitToc['lists'], placeholders: placeholders as SplitToc['placeholders'] };
}
