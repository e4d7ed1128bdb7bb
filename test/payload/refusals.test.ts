/**
 * Every refusal of the reader, each on a crafted .bin that is wrong for exactly one
 * reason (a baseline crafted the same way is accepted), through the library and the CLI.
 */
import t from 'tap';
import { readFile, writeFile, appendFile, truncate, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPairSync, createHash } from 'node:crypto';
import { execa } from 'execa';
import { craftBin } from '../helpers/craft.js';
import { tempDir } from '../helpers/temp.js';
import { openPayload, verifyPayloadData, openEntryStream } from '../../src/format/reader.js';
import { keyIdOf, type PublicKeyInfo } from '../../src/format/keys.js';
import { sealHeaderBlock, ustarBlock } from '../../src/format/tar.js';
import { HEADER_SIZE, RUNTIME_CLI_PATH, RUNTIME_NODE_PATH } from '../../src/format/layout.js';
import { serializeToc, type Toc } from '../../src/format/toc.js';

const AIRGAP = join(import.meta.dirname, '..', '..', 'scripts', 'airgap');
const dir = await tempDir(t, 'airgap-refusals-');
const signer = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const trusted: PublicKeyInfo[] = [{ key: signer.publicKey, keyId: keyIdOf(signer.publicKey), source: 'signer.pub' }];
await writeFile(join(dir, 'signer.pub'), signer.publicKey.export({ type: 'spki', format: 'pem' }));
await writeFile(join(dir, 'other.pub'), other.publicKey.export({ type: 'spki', format: 'pem' }));

let n = 0;
const file = () => join(dir, `case-${n++}.bin`);
const data = Buffer.from('hello\n');

/** Opens and fully verifies, as `airgap inspect --key` does. */
async function check(path: string, keys: PublicKeyInfo[] = trusted) {
  const opened = await openPayload(path, { trustedKeys: keys });
  try {
    await verifyPayloadData(opened);
  } finally {
    await opened.close();
  }
  return opened;
}

t.test('a crafted baseline is accepted (so each refusal below has one cause)', async (t) => {
  const path = file();
  await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data }] });
  const opened = await check(path);
  t.equal(opened.signature.status, 'verified');
  t.same(opened.entries.map((e) => e.path), ['airgap.yaml', 'oci/oci-layout', 'oci/index.json', 'files/a.txt']);
  const cli = await execa(AIRGAP, ['inspect', path, '--key', join(dir, 'signer.pub')], { reject: false });
  t.equal(cli.exitCode, 0, cli.stderr);
});

t.test('the two modes the writer writes are accepted', async (t) => {
  const path = file();
  await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data }, { path: 'files/bin/tool', data, mode: 0o755 }] });
  const opened = await check(path);
  t.same(opened.toc.files.map((f) => f.mode), [0o644, 0o755]);
});

/** A .bin whose header and TOC both carry `version` (renderHeader refuses what the reader refuses, so the header is edited). */
function withVersion(version: string): Parameters<typeof craftBin>[1] {
  return { toc: (toc) => ({ ...toc, version }), editHeader: (h) => h.replace('VERSION="1.0.0"', `VERSION="${version}"`) };
}
const version128 = `1.0.0-${'a'.repeat(122)}`;

t.test('names up to the limits the importer can write are accepted: a 240-byte segment, a 128-character version', async (t) => {
  const path = file();
  const segment = `${'é'.repeat(119)}ab`;
  t.equal(Buffer.byteLength(segment), 240);
  await craftBin(path, { key: signer.privateKey, entries: [{ path: `files/${segment}`, data }], ...withVersion(version128) });
  const opened = await check(path);
  t.equal(opened.toc.version, version128);
  t.same(opened.toc.files.map((f) => f.target), [segment]);
});

// Entries with a hostile tar path are left out of the TOC (which would refuse the path
// itself, AG_TOC_INVALID): the tar rule is checked first, whatever the TOC says.
const entryCases: Array<[string, Parameters<typeof craftBin>[1], string]> = [
  ['symlink', { entries: [{ path: 'files/link', type: '2', linkname: '/etc/passwd' }] }, 'AG_ENTRY_TYPE'],
  ['hard link', { entries: [{ path: 'files/a.txt', data }, { path: 'files/hard', type: '1', linkname: 'files/a.txt' }] }, 'AG_ENTRY_TYPE'],
  ['character device', { entries: [{ path: 'files/dev', type: '3' }] }, 'AG_ENTRY_TYPE'],
  ['block device', { entries: [{ path: 'files/blk', type: '4' }] }, 'AG_ENTRY_TYPE'],
  ['fifo', { entries: [{ path: 'files/fifo', type: '6' }] }, 'AG_ENTRY_TYPE'],
  ['directory', { entries: [{ path: 'files/dir', type: '5' }] }, 'AG_ENTRY_TYPE'],
  ['GNU long name', { entries: [{ path: '././@LongLink', type: 'L', data: Buffer.from('x\0') }] }, 'AG_ENTRY_TYPE'],
  ['absolute path', { entries: [{ path: '/etc/cron.d/evil', data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['dot-dot path', { entries: [{ path: 'files/../../evil', data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['dot-dot first', { entries: [{ path: '../evil', data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['duplicate name', { entries: [{ path: 'files/a.txt', data }, { path: 'files/a.txt', data, unlisted: true }] }, 'AG_DUPLICATE_ENTRY'],
  ['names differing by case', { entries: [{ path: 'files/A.txt', data }, { path: 'files/a.txt', data }] }, 'AG_DUPLICATE_ENTRY'],
  ['names differing by Unicode normalisation', { entries: [{ path: 'files/caf\u00e9', data }, { path: 'files/cafe\u0301', data }] }, 'AG_DUPLICATE_ENTRY'],
  ['entry missing from the TOC', { entries: [{ path: 'files/a.txt', data }, { path: 'files/extra', data, unlisted: true }] }, 'AG_TOC_MISMATCH'],
  [
    'TOC entry missing from the payload',
    { toc: (toc) => ({ ...toc, entries: [...toc.entries, { path: 'files/ghost', size: 1, sha256: 'a'.repeat(64) }] }) },
    'AG_TOC_MISMATCH',
  ],
  [
    'TOC file with no entry (and not in entries)',
    { toc: (toc) => ({ ...toc, files: [...toc.files, { target: 'ghost', path: 'files/ghost', size: 1, sha256: 'a'.repeat(64), mode: 0o644 }] }) },
    'AG_TOC_MISMATCH',
  ],
  [
    'size that disagrees with the TOC',
    { entries: [{ path: 'files/a.txt', data }], toc: (toc) => ({ ...toc, entries: toc.entries.map((e) => (e.path === 'files/a.txt' ? { ...e, size: 99 } : e)) }) },
    'AG_TOC_MISMATCH',
  ],
  ['TOC that is not YAML', { toc: () => Buffer.from('apiVersion: [unclosed\n') }, 'AG_TOC_INVALID'],
  ['TOC of another kind', { toc: () => Buffer.from('apiVersion: airgap/v1\nkind: Bundle\n') }, 'AG_TOC_INVALID'],
  ['TOC whose name differs from the header', { toc: (toc) => ({ ...toc, name: 'other' }) }, 'AG_HEADER'],
  ['TOC not first', { tocLast: true, entries: [{ path: 'files/a.txt', data }] }, 'AG_TOC_MISSING'],
  [
    'TOC image that is not in the OCI index',
    { toc: (toc) => ({ ...toc, images: [{ target: 'a/b:1', source: 'x', digest: `sha256:${'a'.repeat(64)}`, mediaType: 'm', size: 1, platforms: [] }] }) },
    'AG_TOC_MISMATCH',
  ],
  ['payload without an OCI layout', { bare: true, entries: [{ path: 'files/a.txt', data }] }, 'AG_LAYOUT'],
  // Dotfiles: the repository answers 403 for them, so a release must not list them.
  ['dotfile entry', { entries: [{ path: 'files/.env', data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['entry under a dot folder', { entries: [{ path: 'files/site/.git/config', data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['TOC file target that is a dotfile', { entries: [{ path: 'files/a.txt', data }], toc: (toc) => ({ ...toc, files: toc.files.map((f) => ({ ...f, target: 'site/.htaccess', path: 'files/site/.htaccess' })) }) }, 'AG_TOC_INVALID'],
  ['TOC entry path with a dot segment', { entries: [{ path: 'files/a.txt', data }], toc: (toc) => ({ ...toc, entries: toc.entries.map((e) => (e.path === 'files/a.txt' ? { ...e, path: 'files/.a.txt' } : e)) }) }, 'AG_TOC_INVALID'],
  // Names the importer could not write (a file name has 255 bytes): refused before anything is written.
  ['path segment longer than 240 bytes', { entries: [{ path: `files/dir/${'é'.repeat(120)}x`, data, unlisted: true }] }, 'AG_ENTRY_PATH'],
  ['TOC file target with a segment longer than 240 bytes', { entries: [{ path: 'files/a.txt', data }], toc: (toc) => ({ ...toc, files: toc.files.map((f) => ({ ...f, target: 'a'.repeat(241), path: `files/${'a'.repeat(241)}` })) }) }, 'AG_TOC_INVALID'],
  ['version longer than 128 characters', withVersion(`${version128}a`), 'AG_HEADER'],
  // File modes: only the two the writer writes (0644, 0755).
  ['world-writable file mode 0777', { entries: [{ path: 'files/a.txt', data, mode: 0o777 }] }, 'AG_TOC_INVALID'],
  ['file mode 0666', { entries: [{ path: 'files/a.txt', data, mode: 0o666 }] }, 'AG_TOC_INVALID'],
  ['setuid file mode 4755 in the TOC', { entries: [{ path: 'files/a.txt', data }], toc: (toc) => Buffer.from(serializeToc(toc).toString().replace('mode: "0644"', 'mode: "4755"')) }, 'AG_TOC_INVALID'],
  ['file mode 000', { entries: [{ path: 'files/a.txt', data }], toc: (toc) => Buffer.from(serializeToc(toc).toString().replace('mode: "0644"', 'mode: "000"')) }, 'AG_TOC_INVALID'],
];

for (const [what, options, code] of entryCases) {
  t.test(`refused: ${what}`, async (t) => {
    const path = file();
    await craftBin(path, { key: signer.privateKey, ...options });
    await t.rejects(check(path), { code }, what);
  });
}

t.test('refused: an OCI index that names a manifest blob not in the payload', async (t) => {
  const path = file();
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'f'.repeat(64)}`, size: 10, annotations: { 'org.opencontainers.image.ref.name': 'a/b:1', 'io.airgap.kind': 'image' } }] }));
  await craftBin(path, {
    key: signer.privateKey,
    bare: true,
    entries: [
      { path: 'oci/oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
      { path: 'oci/index.json', data: index },
    ],
  });
  await t.rejects(check(path), { code: 'AG_LAYOUT', message: /not in the payload/ });
});

t.test('signatures', async (t) => {
  const unsigned = file();
  await craftBin(unsigned, { entries: [{ path: 'files/a.txt', data }] });
  await t.rejects(check(unsigned), { code: 'AG_UNSIGNED' }, 'unsigned with a key given');
  t.equal((await check(unsigned, [])).signature.status, 'unsigned', 'unsigned without a key: reported, not refused');
  await t.rejects(openPayload(unsigned, { requireSignature: true }), { code: 'AG_UNSIGNED' });

  const byOther = file();
  await craftBin(byOther, { key: other.privateKey, entries: [{ path: 'files/a.txt', data }] });
  await t.rejects(check(byOther), { code: 'AG_UNKNOWN_KEY' }, 'signed by an untrusted key');

  // a valid signature of other bytes, under the trusted key id
  const forged = file();
  const bytes = await craftBin(forged, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data }] });
  const otherSig = (await craftBin(file(), { key: signer.privateKey, name: 'other' })).toString('latin1').match(/SIGNATURE="([^"]*)"/)![1]!;
  const text = bytes.toString('latin1').replace(/SIGNATURE="[^"]*"/, `SIGNATURE="${otherSig}"`);
  await writeFile(forged, Buffer.from(text, 'latin1'));
  await t.rejects(check(forged), { code: 'AG_BAD_SIGNATURE' });
});

t.test('the signed TOC is checked before the rest of the tar is read, and bounds it', async (t) => {
  // Broken further on (a link, a flipped header): the signature is what is refused, first.
  const hostile = { entries: [{ path: 'files/a.txt', data }, { path: 'files/link', type: '2', linkname: '/etc/shadow' }] };
  const unsigned = file();
  await craftBin(unsigned, hostile);
  await t.rejects(check(unsigned), { code: 'AG_UNSIGNED' });
  const byOther = file();
  await craftBin(byOther, { key: other.privateKey, ...hostile });
  await t.rejects(check(byOther), { code: 'AG_UNKNOWN_KEY' });
  const flipped = file();
  const bytes = await craftBin(flipped, { key: other.privateKey, entries: [{ path: 'files/a.txt', data }, { path: 'files/b.txt', data }] });
  const last = bytes.lastIndexOf(Buffer.from('files/b.txt'));
  bytes[last + 140]! ^= 0xff; // inside the header of files/b.txt: its checksum no longer holds
  await writeFile(flipped, bytes);
  await t.rejects(check(flipped), { code: 'AG_UNKNOWN_KEY' });

  // Accepted unverified, the index stops at the first entry the TOC does not list: the
  // link and the flipped header after it are never reached.
  const padded = file();
  const junk = Array.from({ length: 50 }, (_, i) => ({ path: `files/junk-${i}`, unlisted: true }));
  const tail = await craftBin(padded, { entries: [...junk, { path: 'files/link', type: '2', linkname: '/etc/shadow' }] });
  tail[tail.lastIndexOf(Buffer.from('files/link')) + 140]! ^= 0xff;
  await writeFile(padded, tail);
  await t.rejects(openPayload(padded, { allowUnverified: true }), { code: 'AG_TOC_MISMATCH', message: /'files\/junk-0' is in the payload but not in the TOC/ });
});

t.test('damage to the bytes', async (t) => {
  const make = async () => {
    const path = file();
    const bytes = await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data: Buffer.alloc(5000, 7) }] });
    return { path, bytes };
  };
  {
    const { path, bytes } = await make();
    await truncate(path, bytes.length - 1);
    await t.rejects(check(path), { code: 'AG_TRUNCATED' }, 'one byte cut');
  }
  {
    const { path } = await make();
    await truncate(path, HEADER_SIZE + 700);
    await t.rejects(check(path), { code: 'AG_TRUNCATED' }, 'cut in the middle');
  }
  {
    const { path } = await make();
    await appendFile(path, 'x');
    await t.rejects(check(path), { code: 'AG_TRAILING_DATA' }, 'one byte appended');
  }
  {
    const { path, bytes } = await make();
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 1024 - 600] = flipped[bytes.length - 1024 - 600]! ^ 0x01; // inside files/a.txt
    await writeFile(path, flipped);
    await t.rejects(check(path), { code: 'AG_ENTRY_DIGEST', message: /files\/a\.txt/ }, 'a flipped data byte');
  }
  {
    const { path, bytes } = await make();
    const flipped = Buffer.from(bytes);
    flipped[HEADER_SIZE + 512 + 20] = flipped[HEADER_SIZE + 512 + 20]! ^ 0x01; // inside the TOC
    await writeFile(path, flipped);
    await t.rejects(check(path), { code: 'AG_TOC_DIGEST' }, 'a flipped TOC byte');
  }
  {
    const { path, bytes } = await make();
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 1024 - 5000 - 512 + 2] = flipped[bytes.length - 1024 - 5000 - 512 + 2]! ^ 0x01; // the entry's tar header
    await writeFile(path, flipped);
    await t.rejects(check(path), { code: 'AG_TAR_HEADER' }, 'a flipped tar header byte');
  }
  {
    const { path, bytes } = await make();
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 1024 - 60] = flipped[bytes.length - 1024 - 60]! ^ 0x01; // padding after the 5000 data bytes (120 bytes): only the payload digest covers it
    await writeFile(path, flipped);
    await t.rejects(check(path), { code: 'AG_TAR_HEADER', message: /padding/ }, 'a flipped padding byte');
  }
  await t.rejects(check(join(dir, 'does-not-exist.bin')), { code: 'AG_NOT_FOUND' });
  const notOurs = join(dir, 'elf.bin');
  await writeFile(notOurs, await readFile(process.execPath).then((b) => b.subarray(0, 70000)));
  await t.rejects(check(notOurs), { code: 'AG_NOT_AIRGAP' });
});

t.test('the CLI reports a refusal with its code, a hint and exit 1', async (t) => {
  const path = file();
  await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/../../evil', data, unlisted: true }] });
  const r = await execa(AIRGAP, ['inspect', path, '--key', join(dir, 'signer.pub')], { reject: false });
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /airgap: error: entry path 'files\/\.\.\/\.\.\/evil' has a '\.\.' segment \[AG_ENTRY_PATH\]/);
  t.equal(r.stdout, '');
  const unknown = file();
  await craftBin(unknown, { key: other.privateKey });
  const u = await execa(AIRGAP, ['inspect', unknown, '--key', join(dir, 'signer.pub'), '--json'], { reject: false });
  t.equal(u.exitCode, 1);
  t.match(u.stderr, /AG_UNKNOWN_KEY/);
  t.match(u.stderr, /hint: trusted keys: [0-9a-f]{16} \(signer\.pub\)/);
  t.equal(u.stdout, '', 'no JSON on stdout for a refused file');
});

t.test('unsigned parts of the file are refused unless they are exactly what the format writes', async (t) => {
  const withData = { key: signer.privateKey, entries: [{ path: 'files/a.txt', data }] };
  const cases: Array<[string, Parameters<typeof craftBin>[1], string]> = [
    ['a command added to the sh runtime', { ...withData, editHeader: (h) => h.replace('\nself=$0\n', '\nself=$0; touch /tmp/airgap-pwned\n') }, 'AG_HEADER'],
    ['a second assignment after the data block', { ...withData, editHeader: (h) => h.replace('\nself=$0\n', '\nPAYLOAD_SHA256="x"\nself=$0\n') }, 'AG_HEADER'],
    ['bytes in the padding after the marker', { ...withData, editHeader: (h) => `${h.slice(0, 16000)}rm -rf /${h.slice(16008)}` }, 'AG_HEADER'],
    ['a set-uid mode in a tar header', { key: signer.privateKey, entries: [{ path: 'files/a.txt', data, mode: 0o4755 }] }, 'AG_TAR_HEADER'],
    ['an owner in a tar header', { key: signer.privateKey, entries: [{ path: 'files/a.txt', data, header: withOwner(ustarBlock('files/a.txt', data.length, 0o644, Date.parse('2026-01-01T00:00:00Z') / 1000, '0')) }] }, 'AG_TAR_HEADER'],
    ['non-zero padding', { key: signer.privateKey, entries: [{ path: 'files/a.txt', data, padding: Buffer.alloc(512 - data.length, 0x41) }] }, 'AG_TAR_HEADER'],
    ['a pax record with a hex length', { key: signer.privateKey, entries: [{ path: 'files/a.txt', data, header: paxHeader('0x16 path=files/a.txt\n', 'files/a.txt', data.length) }] }, 'AG_TAR_HEADER'],
    ['a pax record other than path and size', { key: signer.privateKey, entries: [{ path: 'files/a.txt', data, header: paxHeader('30 GNU.sparse.name=renamed.txt\n', 'files/a.txt', data.length) }] }, 'AG_TAR_HEADER'],
    ['names that meet under case folding (σ and ς)', { key: signer.privateKey, entries: [{ path: 'files/a\u03c3', data }, { path: 'files/a\u03c2', data }] }, 'AG_DUPLICATE_ENTRY'],
    ['an entry outside oci/ and files/', { key: signer.privateKey, entries: [{ path: 'etc/cron.d/job', data }] }, 'AG_TOC_MISMATCH'],
    ['a blob not named by its digest', { key: signer.privateKey, entries: [{ path: `oci/blobs/sha256/${'a'.repeat(64)}`, data }] }, 'AG_TOC_MISMATCH'],
  ];
  for (const [what, options, code] of cases) {
    const path = file();
    await craftBin(path, options);
    await t.rejects(check(path), { code }, what);
  }
  // the edited runtime is refused by the reader; sh would run it, which is why the reader checks
});

function withOwner(block: Buffer): Buffer {
  const b = Buffer.from(block);
  b.write('0010000\0', 108, 8, 'ascii'); // uid 4096
  return sealHeaderBlock(b);
}

function paxHeader(records: string, path: string, size: number): Buffer {
  const pax = Buffer.from(records);
  const mtime = Date.parse('2026-01-01T00:00:00Z') / 1000;
  return Buffer.concat([ustarBlock(`PaxHeaders/${path}`, pax.length, 0o644, mtime, 'x'), pax, Buffer.alloc(512 - pax.length), ustarBlock(path, size, 0o644, mtime, '0')]);
}

t.test('an index naming one manifest twice, once with a wrong size, is refused', async (t) => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${createHash('sha256').update('{}').digest('hex')}`, size: 2 }, layers: [] }));
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const d = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: manifest.length };
  const index = (second: object) => Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ ...d, annotations: { 'org.opencontainers.image.ref.name': 'a/b:1', 'io.airgap.kind': 'image' } }, { ...d, ...second, annotations: { 'org.opencontainers.image.ref.name': 'a/b:2', 'io.airgap.kind': 'image' } }] }));
  const images = [1, 2].map((n) => ({ target: `a/b:${n}`, source: 'x', digest, mediaType: d.mediaType, size: 1, platforms: [] }));
  const make = async (second: object) => {
    const path = file();
    await craftBin(path, {
      key: signer.privateKey,
      bare: true,
      entries: [
        { path: 'oci/oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
        { path: 'oci/index.json', data: index(second) },
        { path: `oci/blobs/sha256/${digest.slice(7)}`, data: manifest },
        { path: `oci/blobs/sha256/${createHash('sha256').update('{}').digest('hex')}`, data: Buffer.from('{}') },
      ],
      toc: (toc) => ({ ...toc, images }),
    });
    return path;
  };
  await check(await make({}));
  await t.rejects(check(await make({ size: 999999999 })), { code: 'AG_LAYOUT' });
  await t.rejects(check(await make({ mediaType: 'application/vnd.oci.image.index.v1+json' })), { code: 'AG_LAYOUT' });
});

t.test('verification reads the file that was opened, even if the path is replaced', async (t) => {
  const path = file();
  await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data }] });
  const opened = await openPayload(path, { trustedKeys: trusted });
  t.teardown(() => opened.close());
  const swapped = file();
  await craftBin(swapped, { key: signer.privateKey, entries: [{ path: 'files/a.txt', data: Buffer.from('HELLO\n') }] });
  await rename(swapped, path);
  await verifyPayloadData(opened);
  const chunks: Buffer[] = [];
  for await (const c of openEntryStream(opened, 'files/a.txt')) chunks.push(c as Buffer);
  t.equal(Buffer.concat(chunks).toString(), 'hello\n');
});

t.test('a failing source: a folder, and a file cut short after it was opened', async (t) => {
  await t.rejects(openPayload(dir, {}), { code: 'AG_NOT_FOUND', message: /not a regular file/ });
  const path = file();
  const big = Buffer.alloc(300_000, 7);
  await craftBin(path, { key: signer.privateKey, entries: [{ path: 'files/big.bin', data: big }] });
  const opened = await openPayload(path, { trustedKeys: trusted });
  t.teardown(() => opened.close());
  const entry = opened.byPath.get('files/big.bin')!;
  await truncate(path, entry.offset + 1000);
  const read = async () => {
    let n = 0;
    for await (const c of openEntryStream(opened, 'files/big.bin')) n += (c as Buffer).length;
    return n;
  };
  await t.rejects(read(), { code: 'AG_TRUNCATED', message: /cut short at 1000 of 300000 bytes/ }, 'a short read is an error, not a short entry');
});

t.test('format 2: the runtime entries, the TOC that names them and the header that points at them agree (rules 76 to 79)', async (t) => {
  const node = { path: RUNTIME_NODE_PATH, data: Buffer.from('not really node') };
  const cli = { path: RUNTIME_CLI_PATH, data: Buffer.from('not really the cli') };
  const runtime = { node: 'v20.20.2', platform: 'linux-x64' };
  const named = (toc: Toc): Toc => ({ ...toc, runtime });
  const good = file();
  await craftBin(good, { key: signer.privateKey, entries: [node, cli], toc: named, runtime: true });
  const opened = await check(good);
  t.same(opened.toc.runtime, runtime, 'a consistent format 2 file is accepted');

  const cases: Array<[string, Parameters<typeof craftBin>[1], string, RegExp]> = [
    ['format 2, no runtime in the TOC', { entries: [node, cli], runtime: true }, 'AG_HEADER', /format 2, and the signed TOC names no runtime/],
    ['format 1, a runtime in the TOC', { entries: [node, cli], toc: named }, 'AG_HEADER', /format 1, and the signed TOC names runtime/],
    ['a runtime named, its CLI not listed', { entries: [node, { ...cli, unlisted: true }], toc: named, runtime: true }, 'AG_TOC_MISMATCH', /does not list runtime\/airgap\.mjs\.gz/],
    ['another entry under runtime/', { entries: [node, cli, { path: 'runtime/extra', data }], toc: named, runtime: true }, 'AG_TOC_MISMATCH', /'runtime\/extra' is neither/],
    ['RUNTIME_NODE elsewhere', { entries: [node, cli], toc: named, runtime: (s) => ({ ...s, node: { offset: s.node.offset + 512, size: s.node.size } }) }, 'AG_HEADER', /RUNTIME_NODE is not where runtime\/node\.gz is/],
    ['RUNTIME_CLI of another size', { entries: [node, cli], toc: named, runtime: (s) => ({ ...s, cli: { offset: s.cli.offset, size: s.cli.size + 1 } }) }, 'AG_HEADER', /RUNTIME_CLI is not where/],
  ];
  for (const [what, options, code, message] of cases) {
    const path = file();
    await craftBin(path, { key: signer.privateKey, ...options });
    await t.rejects(check(path), { code, message }, what);
  }
  const format1 = file();
  await craftBin(format1, { key: signer.privateKey, entries: [{ ...node }] });
  await t.rejects(check(format1), { code: 'AG_TOC_MISMATCH', message: /is a runtime, and the TOC names none/ }, 'a runtime entry in a TOC without runtime');
});
