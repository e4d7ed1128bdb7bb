import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { encodeFileHeader, endOfArchive, paddingFor, parseHeaderBlock, parsePaxRecords } from '../../src/format/tar.js';
import { renderHeader, parseHeader, type HeaderFields } from '../../src/format/header.js';
import { entryPathProblem, collisionKey } from '../../src/format/paths.js';
import { HEADER_SIZE } from '../../src/format/layout.js';
import { parseToc, serializeToc } from '../../src/format/toc.js';
import { splitTarget } from '../../src/oci/reference.js';
import { parseImageReference } from '../../src/oci/reference.js';
import { tempDir } from '../helpers/temp.js';

const fields: HeaderFields = {
  format: '1',
  name: 'demo',
  version: '1.2.3-rc.1+build.5',
  created: '2026-11-22T10:00:00Z',
  payloadOffset: HEADER_SIZE,
  payloadSize: 12345,
  payloadSha256: 'a'.repeat(64),
  tocOffset: HEADER_SIZE + 512,
  tocSize: 100,
  tocSha256: 'b'.repeat(64),
  keyId: '0123456789abcdef',
  signature: `${'A'.repeat(86)}==`,
};

t.test('header renders to exactly HEADER_SIZE bytes and parses back as data', async (t) => {
  const bytes = renderHeader(fields);
  t.equal(bytes.length, HEADER_SIZE);
  t.same(parseHeader(bytes), fields);
});

t.test('format 1 headers stay byte for byte what earlier releases wrote, so their files still read', async (t) => {
  const v1 = { format: '1', name: 'demo', version: '1.2.3', created: '2026-01-01T00:00:00Z', payloadOffset: 16384, payloadSize: 123456, payloadSha256: 'a'.repeat(64), tocOffset: 16896, tocSize: 3796, tocSha256: 'b'.repeat(64), keyId: '0123456789abcdef', signature: `${'A'.repeat(86)}==` };
  // The sha256 of this header as the code before format 2 rendered it.
  t.equal(createHash('sha256').update(renderHeader(v1)).digest('hex'), 'dccf9fec199b5ca2da79fb99378e590c42a36fb0c41916bff384a4aed4ecd6b1');
});

t.test('format 2: two runtime fields after SIGNATURE, the runtime with its verbs; each format with its own fields only', async (t) => {
  const v2: HeaderFields = { ...fields, format: '2', runtime: { node: { offset: 20480, size: 36_000_000 }, cli: { offset: 36_021_000, size: 124_000 } } };
  const bytes = renderHeader(v2);
  t.equal(bytes.length, HEADER_SIZE);
  t.same(parseHeader(bytes), v2);
  const text = bytes.toString('latin1');
  t.match(text, /SIGNATURE="[^"]*"\nRUNTIME_NODE="20480 36000000"\nRUNTIME_CLI="36021000 124000"\n# --- end of airgap header ---/);
  t.match(text, /\n {2}push\|verify\|inspect\) cli "\$@" ;;\n/);
  t.notMatch(renderHeader(fields).toString('latin1'), /RUNTIME_NODE|cli "\$@"/, 'format 1 has neither');
  t.throws(() => renderHeader({ ...fields, format: '2' }), { code: 'AG_HEADER' }, 'format 2 needs the runtime fields');
  t.throws(() => renderHeader({ ...v2, format: '1' }), { code: 'AG_HEADER' }, 'format 1 has none');
  t.throws(() => parseHeader(Buffer.from(text.replace(/RUNTIME_CLI="[^"]*"\n/, ''), 'latin1')), { code: 'AG_HEADER', message: /RUNTIME_CLI is missing/ });
  t.throws(() => parseHeader(Buffer.from(text.replace('RUNTIME_CLI="36021000 124000"', 'RUNTIME_CLI="36021000"'), 'latin1')), { code: 'AG_HEADER', message: /RUNTIME_CLI has an invalid value/ });
  t.throws(() => parseHeader(Buffer.from(text.replace('AIRGAP_FORMAT="2"', 'AIRGAP_FORMAT="1"'), 'latin1')), { code: 'AG_HEADER' }, 'format 1 with runtime fields is not a header this format writes');
});

t.test('header refuses values that could inject shell code', async (t) => {
  for (const name of ['demo"; rm -rf /; "', 'a$(id)', 'a`id`', 'UPPER', 'a\nb']) {
    t.throws(() => renderHeader({ ...fields, name }), { code: 'AG_HEADER' }, name);
  }
  t.throws(() => renderHeader({ ...fields, version: '1.0' }), { code: 'AG_HEADER' });
});

t.test('header parsing rejects what is not ours or is malformed', async (t) => {
  t.throws(() => parseHeader(Buffer.from('\x7fELF...')), { code: 'AG_NOT_AIRGAP' });
  const good = renderHeader(fields).toString('latin1');
  t.throws(() => parseHeader(Buffer.from(good.replace('AIRGAP_FORMAT="1"', 'AIRGAP_FORMAT="9"'), 'latin1')), { code: 'AG_FORMAT' });
  t.throws(() => parseHeader(Buffer.from(good.replace('PAYLOAD_SIZE="12345"', 'PAYLOAD_SIZE="$(id)"'), 'latin1')), { code: 'AG_HEADER' });
  t.throws(() => parseHeader(Buffer.from(good.replace('NAME="demo"', 'NAME="demo"\nNAME="other"'), 'latin1')), { code: 'AG_HEADER' });
  t.throws(() => parseHeader(Buffer.from(good.replace(/TOC_SIZE="100"\n/, ''), 'latin1')), { code: 'AG_HEADER' });
  t.throws(() => parseHeader(Buffer.from(good.replace('SIGNATURE="', 'SIGNATURE="x'), 'latin1')), { code: 'AG_HEADER' });
});

t.test('tar headers: ustar for short names, pax for long and non-ASCII ones; GNU tar agrees', async (t) => {
  const dir = await tempDir(t, 'airgap-tar-');
  const names = ['short.txt', `${'d/'.repeat(60)}long-name.txt`, 'files/ünïcødé/名前.txt'];
  const parts: Buffer[] = [];
  for (const [i, name] of names.entries()) {
    const data = Buffer.from(`content ${i}\n`);
    parts.push(encodeFileHeader({ path: name, size: data.length, mode: 0o755, mtime: 1700000000 }), data, Buffer.alloc(paddingFor(data.length)));
  }
  parts.push(endOfArchive());
  const tar = Buffer.concat(parts);
  t.equal(tar.length % 512, 0);
  await writeFile(join(dir, 't.tar'), tar);
  const listed = (await execa('tar', ['-tf', join(dir, 't.tar')])).stdout.split('\n');
  t.same(listed, names);
  const first = parseHeaderBlock(tar.subarray(0, 512), 0);
  t.equal(first.name, 'short.txt');
  t.equal(first.mode, 0o755);
  t.equal(first.typeflag, '0');
  const pax = parseHeaderBlock(tar.subarray(1024, 1536), 1024);
  t.equal(pax.typeflag, 'x');
  t.equal(parsePaxRecords(tar.subarray(1536, 1536 + pax.size), 1536).get('path'), names[1]);
  const flipped = Buffer.from(tar.subarray(0, 512));
  flipped[10] = flipped[10]! ^ 1;
  t.throws(() => parseHeaderBlock(flipped, 0), { code: 'AG_TAR_HEADER' });
});

t.test('entry path rules', async (t) => {
  for (const ok of ['a', 'oci/blobs/sha256/abc', 'files/x y/z.yaml']) t.equal(entryPathProblem(ok), undefined, ok);
  for (const bad of ['', '/etc/passwd', '../x', 'a/../b', './a', 'a//b', 'a/', 'a\\b', 'a\0b', 'a\nb']) t.not(entryPathProblem(bad), undefined, JSON.stringify(bad));
  t.equal(collisionKey('Files/A.yaml'), collisionKey('files/a.yaml'));
  t.equal(collisionKey('caf\u00e9'), collisionKey('cafe\u0301'));
  t.not(collisionKey('a'), collisionKey('b'));
});

t.test('TOC round trip and validation', async (t) => {
  const toc = {
    apiVersion: 'airgap/v1' as const,
    kind: 'TableOfContents' as const,
    name: 'demo',
    version: '1.0.0',
    created: '2026-11-22T10:00:00Z',
    images: [{ target: 'library/busybox:1.35', source: 'oci:x:y', digest: `sha256:${'c'.repeat(64)}`, mediaType: 'm', size: 1, platforms: ['linux/amd64'] }],
    charts: [],
    packs: [],
    files: [{ target: 'a.yaml', path: 'files/a.yaml', size: 3, sha256: 'd'.repeat(64), mode: 0o755 }],
    entries: [{ path: 'files/a.yaml', size: 3, sha256: 'd'.repeat(64) }],
  };
  t.same(await parseToc(serializeToc(toc)), toc);
  const text = serializeToc(toc).toString();
  await t.rejects(parseToc(Buffer.from(text.replace('name: demo', 'name: demo\nname: again'))), { code: 'AG_TOC_INVALID' });
  await t.rejects(parseToc(Buffer.from(text.replaceAll('path: files/a.yaml', 'path: ../a.yaml'))), { code: 'AG_TOC_INVALID' });
  await t.rejects(parseToc(Buffer.from('{')), { code: 'AG_TOC_INVALID' });
  await t.rejects(parseToc(Buffer.from(text.replace('name: demo', 'name: &n demo\nalias: *n'))), { code: 'AG_TOC_INVALID', message: /not plain YAML/ });
  await t.rejects(parseToc(Buffer.from(text.replace(`sha256: ${'d'.repeat(64)}\n`, 'sha256: nothex\n'))), { code: 'AG_TOC_INVALID' });
});

t.test('names and references', async (t) => {
  t.same(splitTarget('library/busybox:1.35'), { repository: 'library/busybox', tag: '1.35' });
  t.equal(splitTarget('Library/busybox:1'), undefined);
  t.equal(splitTarget('busybox'), undefined);
  t.same(parseImageReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', reference: 'latest' });
  t.same(parseImageReference('127.0.0.1:5000/a/b:v1'), { registry: '127.0.0.1:5000', repository: 'a/b', reference: 'v1' });
  t.same(parseImageReference(`localhost/x@sha256:${'e'.repeat(64)}`), { registry: 'localhost', repository: 'x', reference: `sha256:${'e'.repeat(64)}` });
  t.throws(() => parseImageReference('x@sha256:123'), { code: 'AG_BAD_REFERENCE' });
});
