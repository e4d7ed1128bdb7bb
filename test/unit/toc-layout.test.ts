/**
 * The writer's layout of the TOC's long lists (src/format/toc-layout.ts, docs/format.md
 * section 4.8): the line-by-line writer makes the bytes the YAML library makes, the
 * line-by-line reader reads what the YAML library reads, and a TOC not in the layout is
 * read whole when small and refused when large.
 */
import t from 'tap';
import { parse, stringify } from 'yaml';
import { MAX_FREE_FORM_TOC_BYTES, parseToc, serializeToc, type Toc } from '../../src/format/toc.js';
import { splitLongLists } from '../../src/format/toc-layout.js';

const split = (text: string) => splitLongLists(Buffer.from(text, 'utf8'));

/** Names chosen to sit on every edge of YAML's plain scalars. */
const TRICKY = [
  'readme.txt', 'a/b/c.tar.gz', '123', '1.0/readme', '1.0', '0x1F', '0o17', '1e5', '.5', '+1', '-1', '.inf', '.nan', '-.inf',
  'true', 'True', 'TRUE', 'false', 'null', 'Null', 'NULL', '~', 'yes', 'no', 'on', 'off', 'y', '2026-01-01', '1_000', '12:30',
  'a b', 'a  b', 'a: b', 'a:b', 'a #b', 'a#b', "it's", 'x"y', 'x\\y', '-x', '- x', '?x', '? x', ':x', '[x]', '{x}', 'x,y', 'x]', '@x', '`x',
  '%x', '!x', '&x', '*x', '|x', '>x', '#x', '"x"', "'x'", 'x:', 'x: ', ' x', 'x ', 'é', 'café/naïve', '日本語', 'emoji😀', 'a\u00a0b',
  'a\u0085b', 'a\u2028b', 'tab\there', 'x=y', 'x+y', 'x@y', '---', '...', '--- x', '<<', '=', 'a/-b', 'a/?b', 'a/#b', 'a/ b', 'a/b ',
];

function tocWith(names: string[]): Toc {
  // Mostly letters, as real digests are; all-digit ones (quoted by YAML) come from TRICKY's numbers below.
  const hex = (i: number) => (i % 7 === 3 ? String(i).padStart(64, '0') : i.toString(16).padStart(64, 'a'));
  return {
    apiVersion: 'airgap/v1',
    kind: 'TableOfContents',
    name: 'edge',
    version: '1.0.0',
    created: '2026-01-01T00:00:00Z',
    images: [{ target: 'a/b:1', source: 'docker://x/y:1', digest: `sha256:${hex(1)}`, mediaType: 'm', size: 1, platforms: ['linux/amd64'] }],
    charts: [],
    packs: [],
    files: names.map((name, i) => ({ target: name, path: `files/${name}`, size: i, sha256: hex(i), mode: i % 2 ? 0o755 : 0o644 })),
    entries: names.map((name, i) => ({ path: `files/${name}`, size: i, sha256: hex(i) })),
  };
}

/** The TOC as the YAML library alone writes it (what serializeToc wrote before the layout was its own code). */
function yamlOf(toc: Toc): string {
  return stringify(
    {
      apiVersion: toc.apiVersion,
      kind: toc.kind,
      name: toc.name,
      version: toc.version,
      created: toc.created,
      images: toc.images,
      charts: toc.charts,
      packs: toc.packs,
      files: toc.files.map((f) => ({ target: f.target, path: f.path, size: f.size, sha256: f.sha256, mode: `0${f.mode.toString(8)}` })),
      entries: toc.entries,
    },
    { lineWidth: 0 },
  );
}

/** Random names over an alphabet of YAML's indicators, quotes, spaces and letters. */
function randomNames(count: number, seed: number): string[] {
  const alphabet = ['a', 'b', 'e', 'E', 'x', 'o', 'n', 'f', 'i', 'Z', '0', '1', '9', '.', '/', '-', '_', ' ', ':', '#', "'", '"', '\\', '[', '{', ',', '&', '*', '!', '|', '>', '%', '@', '`', '?', '=', '+', '~', '\t', 'é', '😀', '\u0085', '\u2028'];
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: count }, () => Array.from({ length: 1 + Math.floor(next() * 8) }, () => alphabet[Math.floor(next() * alphabet.length)]!).join(''));
}

t.test('the writer makes the bytes the YAML library makes, for every edge name and 2,000 random ones', async (t) => {
  for (const names of [TRICKY, randomNames(2000, 7)]) {
    const toc = tocWith(names);
    t.equal(serializeToc(toc).toString('utf8'), yamlOf(toc));
  }
});

t.test('the line reader reads the long lists as the YAML library does', async (t) => {
  for (const names of [TRICKY, randomNames(2000, 11)]) {
    const text = serializeToc(tocWith(names)).toString('utf8');
    const lists = await split(text);
    if (!lists) {
      t.fail('the writer wrote a TOC outside its own layout');
      continue;
    }
    const whole = parse(text) as { files: unknown; entries: unknown };
    t.same(lists.lists.files, whole.files);
    t.same(lists.lists.entries, whole.entries);
    t.same(parse(lists.rest), { ...whole, files: [], entries: [] });
  }
});

t.test('a valid TOC with edge names reads back equal', async (t) => {
  const names = TRICKY.filter((n) => !/^[.\s]|[\x00-\x1f\x7f]|\s$|\/[.\s]|\s\//.test(n) && !['...', '---'].includes(n) && !n.startsWith('--- ') && !n.includes('\\'));
  const toc = tocWith(names);
  t.same(await parseToc(serializeToc(toc)), toc);
});

t.test('a small TOC in another layout is read whole; a large one is refused with the reason', async (t) => {
  const toc = tocWith(['a.txt', 'b.txt']);
  const text = serializeToc(toc).toString('utf8');
  // Keys of an entry in another order, a comment, flow style: still YAML, not the layout.
  const reordered = text.replace(/ {2}- path: (files\/a\.txt)\n {4}size: (\d+)\n {4}sha256: (\w+)\n/, '  - sha256: $3\n    size: $2\n    path: $1\n');
  t.not(reordered, text);
  t.equal(await split(reordered), undefined);
  t.same(await parseToc(Buffer.from(reordered)), toc);
  const commented = text.replace('entries:\n', 'entries:\n  # a comment\n');
  t.same(await parseToc(Buffer.from(commented)), toc);

  const big = tocWith(Array.from({ length: 8000 }, (_, i) => `data/file-${i}.txt`));
  const bigText = serializeToc(big).toString('utf8');
  t.ok(bigText.length > MAX_FREE_FORM_TOC_BYTES, 'the large TOC is over the limit');
  t.equal((await parseToc(Buffer.from(bigText))).files.length, 8000, 'in the layout, size is no problem');
  await t.rejects(parseToc(Buffer.from(bigText.replace('entries:\n', 'entries:\n  # a comment\n'))), { code: 'AG_TOC_INVALID', message: /not in the writer's layout/ });
});

t.test('a list header that the rest of the TOC does not see at the top level is not taken as the list', async (t) => {
  const text = serializeToc(tocWith(['a.txt'])).toString('utf8');
  // `entries:` twice: the line reader gives up, the YAML library refuses the duplicate key.
  await t.rejects(parseToc(Buffer.from(`${text}entries:\n  - path: files/a.txt\n    size: 0\n    sha256: ${'0'.repeat(64)}\n`)), { code: 'AG_TOC_INVALID' });
  // Inside a flow sequence the header is not a key of the TOC.
  const nested = text.replace('charts: []\n', 'charts: [\nentries:\n  - path: x\n    size: 1\n    sha256: y\n]\n');
  await t.rejects(parseToc(Buffer.from(nested)), { code: 'AG_TOC_INVALID' });
});

t.test('only the exact text the writer makes is the layout; other forms go to the YAML library or are refused', async (t) => {
  const head = 'files: []\nentries:\n';
  const one = await split(`${head}  - path: files/café\n    size: 16\n    sha256: abc\n`);
  t.same(one?.lists.entries, [{ path: 'files/café', size: 16, sha256: 'abc' }], 'the writer writes café plain');
  t.same((await split(`${head}  - path: "123"\n    size: 1\n    sha256: abc\n`))?.lists.entries, [{ path: '123', size: 1, sha256: 'abc' }], 'and quotes a number-like name');
  for (const [what, item] of [
    ['an escape the writer does not use', '  - path: "files/caf\\u00e9"\n    size: 1\n    sha256: abc\n'],
    ['a number in hex', '  - path: x\n    size: 0x10\n    sha256: abc\n'],
    ['single quotes', "  - path: x\n    size: 1\n    sha256: 'abc'\n"],
    ['a trailing space', '  - path: x \n    size: 1\n    sha256: abc\n'],
    ['an anchor', '  - path: &a x\n    size: 1\n    sha256: y\n'],
    ['an item cut short', '  - path: x\n    size: 1\n'],
    ['a CR', '  - path: x\r\n    size: 1\n    sha256: y\n'],
  ] as const) {
    t.equal(await split(`${head}${item}`), undefined, what);
  }
  t.equal(await split('entries:\n  - path: x\n    size: 1\n    sha256: abc\n'), undefined, 'a TOC without its files list is not the layout');
});

t.test('hostile TOCs: a list hidden in a string, another YAML version, impossible dates, costly YAML', async (t) => {
  const hex = 'a'.repeat(64);
  const text = serializeToc(tocWith(['a.txt'])).toString('utf8');
  // A flow mapping may run a quoted string over lines at the left margin: the lines of a
  // list inside it are not a list of the TOC (the YAML library reads them as text).
  const hidden = [
    `{apiVersion: airgap/v1, kind: TableOfContents, name: edge, version: 1.0.0, created: "2026-01-01T00:00:00Z", images: [], charts: [], packs: [], note: '`,
    'files:',
    '  - target: evil.sh',
    '    path: files/evil.sh',
    '    size: 1',
    `    sha256: ${hex}`,
    '    mode: "0755"',
    'entries:',
    '  - path: files/evil.sh',
    '    size: 1',
    `    sha256: ${hex}`,
    "', files: [], entries: []}",
    '',
  ].join('\n');
  const seen = await parseToc(Buffer.from(hidden)).catch((err: { code?: string }) => err.code);
  t.ok(seen === 'AG_TOC_INVALID' || (typeof seen === 'object' && seen.files.length === 0), 'evil.sh is not a file of the TOC');
  t.same((parse(hidden) as { files: unknown[] }).files, [], 'as the YAML library reads it');

  await t.rejects(parseToc(Buffer.from(`%YAML 1.1\n---\n${text}`)), { code: 'AG_TOC_INVALID', message: /YAML 1\.1/ }, 'YAML 1.1 reads 010 as 8 and on as true');
  for (const created of ['2300-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-01-01T24:00:00Z']) {
    await t.rejects(parseToc(Buffer.from(text.replace('created: 2026-01-01T00:00:00Z', `created: ${created}`))), { code: 'AG_TOC_INVALID', message: /created/ }, created);
  }
  await t.rejects(parseToc(Buffer.from(`${text}x: [${'a,'.repeat(100)}a]\n${'y: [b, c]\n'.repeat(64)}`)), { code: 'AG_TOC_INVALID', message: /flow/ }, 'flow collections the writer never makes');
  await t.rejects(parseToc(Buffer.from(`${text}apiVersion: again\n`)), { code: 'AG_TOC_INVALID', message: /unique/ }, 'a duplicate key in the rest');
  const big = serializeToc(tocWith(Array.from({ length: 2000 }, (_, i) => `data/file-${i}.txt`))).toString('utf8');
  await t.rejects(parseToc(Buffer.from(big.replace('entries:\n', 'entries: # the list\n'))), { code: 'AG_TOC_INVALID', message: /not in the writer's layout/ }, 'a large TOC with a list header the layout does not write');
});

/** `bytes` cut into chunks of the given sizes, cycled (a line may span many chunks). */
async function* chunked(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

t.test('read in chunks, a TOC gives what it gives whole, wherever the chunks cut its lines', async (t) => {
  const toc = tocWith(Array.from({ length: 3000 }, (_, i) => `data/d${i % 7}/file-${i}.txt`));
  const bytes = serializeToc(toc);
  t.ok(bytes.length > MAX_FREE_FORM_TOC_BYTES, 'over the free-form limit: read line by line only');
  const whole = await splitLongLists(bytes);
  t.ok(whole);
  for (const sizes of [[7, 1, 300], [65536], [bytes.length], [bytes.length - 1, 1]]) {
    t.same(await splitLongLists(chunked(bytes, sizes)), whole, `chunks of ${sizes.join(', ')} bytes`);
  }
  const few = serializeToc(tocWith(['a.txt', 'b c.txt', 'café']));
  t.ok(await splitLongLists(few), 'in the layout');
  t.same(await splitLongLists(chunked(few, [1])), await splitLongLists(few), 'chunks of one byte (a character of several bytes cut too)');
  t.same(await parseToc({ size: bytes.length, chunks: chunked(bytes, [4093]) }), toc);
  const small = serializeToc(tocWith(['a.txt']));
  t.same(await parseToc({ size: small.length, chunks: chunked(small, [5]) }), tocWith(['a.txt']), 'a small TOC in chunks is read whole');
  const noNewline = bytes.subarray(0, bytes.length - 1);
  t.same(await splitLongLists(chunked(noNewline, [999])), await splitLongLists(noNewline), 'the last line without its newline');
});

t.test('a TOC read in chunks is returned only once the chunks ended: a digest checked at their end decides', async (t) => {
  const bytes = serializeToc(tocWith(Array.from({ length: 3000 }, (_, i) => `data/file-${i}.txt`)));
  async function* changedAtTheEnd(): AsyncGenerator<Buffer> {
    yield* chunked(bytes, [65536]);
    throw new Error('the digest differs');
  }
  await t.rejects(parseToc({ size: bytes.length, chunks: changedAtTheEnd() }), { message: 'the digest differs' });
  await t.rejects(parseToc({ size: 1000, chunks: (async function* () { yield Buffer.from('files: []\n'); throw new Error('cut'); })() }), { message: 'cut' }, 'a small TOC too');
});
