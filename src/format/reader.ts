/**
 * Reading a .bin without running or extracting it (docs/format.md):
 * parse the header as data; read the TOC (the first entry) and check it against its
 * digest and signature before anything else; index the tar by seeking from header to
 * header (no data is read), holding every entry to the verified TOC and the entry rules;
 * and check that the OCI layout is closed (every manifest's blobs are present). `verifyPayloadData` then reads the payload once to check the payload digest
 * and every entry's sha256; `openEntryStream` gives one entry's bytes by offset.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import { PayloadError } from '../kit/errors.js';
import { runPool } from '../kit/pool.js';
import { parseHeader, type HeaderFields } from './header.js';
import { BLOCK_SIZE, encodeFileHeader, isZeroBlock, paddingFor, parseHeaderBlock, parsePaxRecords, typeName, TYPE_FILE, TYPE_FILE_OLD, TYPE_PAX_HEADER } from './tar.js';
import { collisionKey, entryPathProblem } from './paths.js';
import { MAX_FREE_FORM_TOC_BYTES, MAX_TOC_BYTES, parseToc, type Toc, type TocEntry, type TocFile } from './toc.js';
import { verifyBytes, type PublicKeyInfo } from './keys.js';
import { sha256Hex, sha256Digest } from '../kit/digest.js';
import { ANNOTATION_KIND, ANNOTATION_REF_NAME, FILES_DIR, FORMAT_WITH_RUNTIME, HEADER_SIZE, OCI_INDEX_PATH, OCI_LAYOUT_PATH, RUNTIME_CLI_PATH, RUNTIME_NODE_PATH, TOC_PATH, blobPath, digestOfBlobPath, filePath } from './layout.js';
import { MAX_MANIFEST_BYTES, isIndexMediaType, parseManifest, type Descriptor } from '../oci/manifest.js';

/** One tar entry as indexed: where its data is in the file. */
export interface IndexedEntry {
  path: string;
  /** Data size in bytes. */
  size: number;
  /** Byte offset of the data from the start of the .bin file. */
  offset: number;
  /** Permission bits from the tar header. */
  mode: number;
  /** Byte offset of the entry's first header block (its pax header, if any). */
  headerOffset: number;
}

export interface SignatureStatus {
  /** verified: signed by one of the given keys; unsigned: no signature; unchecked: signed, no key given. */
  status: 'verified' | 'unsigned' | 'unchecked';
  keyId: string;
  /** Name of the public key file that verified it. */
  keySource?: string;
}

export interface OpenedPayload {
  file: string;
  fileSize: number;
  header: HeaderFields;
  toc: Toc;
  /** Entries in tar order, the TOC first. */
  entries: IndexedEntry[];
  byPath: Map<string, IndexedEntry>;
  signature: SignatureStatus;
  /** oci/index.json: one descriptor per image, chart and pack. */
  index: Descriptor[];
  /**
   * The open file: every later read goes through it, so the bytes read are those of the
   * file that was checked even if the path is replaced meanwhile. Close it when done.
   */
  handle: FileHandle;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Keys to verify the signature with. When any is given, a valid signature by one of them is required. */
  trustedKeys?: PublicKeyInfo[];
  /** Refuse unsigned files even when no key is given. */
  requireSignature?: boolean;
  /**
   * Accept a file that is unsigned or signed by a key not given (status `unsigned` or
   * `unchecked`): the operator's explicit choice. A signature by a given key must still
   * verify.
   */
  allowUnverified?: boolean;
}

/** Items handled between two turns of the event loop: a 100,000-entry file must not stall a server. */
const ITEMS_PER_TURN = 20_000;

/** Largest pax extended header accepted, in bytes. */
const MAX_PAX_BYTES = 64 * 1024;

/** A read that the system refused (EIO from a failing disk, a file gone on a network mount). */
function readFailed(what: string, position: number, cause: unknown): PayloadError {
  const code = (cause as NodeJS.ErrnoException).code ?? String(cause);
  return new PayloadError('AG_READ_FAILED', `cannot read ${what} at byte ${position}: ${code}`, { cause, hint: 'check the disk and the file (dmesg), or copy the file again' });
}

async function readAt(fh: FileHandle, position: number, length: number, what: string, into?: Buffer): Promise<Buffer> {
  const buffer = into && into.length >= length ? into.subarray(0, length) : Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buffer, got, length - got, position + got).catch((cause: unknown) => {
      throw readFailed(what, position + got, cause);
    });
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got !== length) throw new PayloadError('AG_TRUNCATED', `${what} is cut short at byte ${position + got}; the file is truncated`, { hint: 'copy the file again' });
  return buffer;
}

/**
 * Reads the tar's headers through one 64 KiB window: the headers and padding of a run of
 * small entries cost one system call per window, not three per entry.
 */
class HeaderReader {
  private readonly buffer = Buffer.allocUnsafe(64 * 1024);
  private window: Buffer = Buffer.alloc(0);
  private start = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly end: number,
  ) {}

  /** `length` bytes at `position`: a view that the next call may overwrite. Throws AG_TRUNCATED. */
  async read(position: number, length: number, what: string): Promise<Buffer> {
    const from = position - this.start;
    if (from >= 0 && from + length <= this.window.length) return this.window.subarray(from, from + length);
    const want = Math.max(length, Math.min(this.buffer.length, this.end - position));
    this.window = await readAt(this.fh, position, want, what, this.buffer);
    this.start = position;
    return this.window.subarray(0, length);
  }
}

/** What the verified TOC says each entry must be, for the index to hold the tar to. */
interface Expectations {
  /** Path → the TOC's entry; the TOC itself is not in it. */
  listed: Map<string, TocEntry>;
  /** Path → file of the TOC's file list. */
  files: Map<string, TocFile>;
  /** Modification time of every entry, seconds (the TOC's `created`). */
  mtime: number;
  /** The TOC names a runtime (format 2): its two entries are expected. */
  runtime: boolean;
}

/**
 * Checks what the TOC says of its own lists before the tar is read: no two entries that
 * collide on a case-insensitive or normalising file system, the TOC not listed, each file
 * once and stored where the format puts it. Throws AG_DUPLICATE_ENTRY or AG_TOC_MISMATCH.
 */
async function expectationsOf(toc: Toc): Promise<Expectations> {
  const listed = new Map<string, TocEntry>();
  const keys = new Map<string, string>([[collisionKey(TOC_PATH), TOC_PATH]]);
  let count = 0;
  for (const e of toc.entries) {
    if (++count % ITEMS_PER_TURN === 0) await setImmediate();
    if (e.path === TOC_PATH) throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists itself`);
    const key = collisionKey(e.path);
    const other = keys.get(key);
    if (other !== undefined) throw new PayloadError('AG_DUPLICATE_ENTRY', `entries '${other}' and '${e.path}' differ only by case or Unicode normalisation`);
    keys.set(key, e.path);
    listed.set(e.path, e);
  }
  const files = new Map<string, TocFile>();
  const targets = new Set<string>();
  for (const f of toc.files) {
    if (++count % ITEMS_PER_TURN === 0) await setImmediate();
    const key = collisionKey(f.target);
    if (targets.has(key)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists the file ${f.target} twice`);
    if (f.path !== filePath(f.target)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC's file ${f.target} is not stored at ${filePath(f.target)}`);
    targets.add(key);
    files.set(f.path, f);
  }
  if (toc.runtime) {
    for (const path of [RUNTIME_NODE_PATH, RUNTIME_CLI_PATH]) {
      if (!listed.has(path)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC names a runtime and does not list ${path}`);
    }
  }
  return { listed, files, mtime: Math.floor(Date.parse(toc.created) / 1000), runtime: toc.runtime !== undefined };
}

/**
 * Every entry but the TOC is listed in the TOC with the same size; each is the OCI layout
 * file, the index, a blob named by its own sha256, or a file of the TOC's file list.
 * Throws AG_TOC_MISMATCH.
 */
function checkListed(expect: Expectations, path: string, size: number): TocEntry {
  const t = expect.listed.get(path);
  if (!t) throw new PayloadError('AG_TOC_MISMATCH', `entry '${path}' is in the payload but not in the TOC`);
  if (t.size !== size) throw new PayloadError('AG_TOC_MISMATCH', `entry '${path}' is ${size} bytes, the TOC says ${t.size}`);
  const digest = digestOfBlobPath(path);
  if (digest !== undefined) {
    if (digest !== `sha256:${t.sha256}`) throw new PayloadError('AG_TOC_MISMATCH', `blob '${path}' has sha256 ${t.sha256} in the TOC, not its name`);
  } else if (path.startsWith(`${FILES_DIR}/`)) {
    const f = expect.files.get(path);
    if (!f || f.size !== t.size || f.sha256 !== t.sha256) throw new PayloadError('AG_TOC_MISMATCH', `entry '${path}' is not in the TOC's file list`);
  } else if (path === RUNTIME_NODE_PATH || path === RUNTIME_CLI_PATH) {
    if (!expect.runtime) throw new PayloadError('AG_TOC_MISMATCH', `entry '${path}' is a runtime, and the TOC names none`);
  } else if (path !== OCI_LAYOUT_PATH && path !== OCI_INDEX_PATH) {
    throw new PayloadError('AG_TOC_MISMATCH', `entry '${path}' is neither a blob, a file, a runtime nor the OCI layout`);
  }
  return t;
}

/**
 * Indexes the tar from `start` (the header after the TOC's data) to `end` (byte offsets in
 * the file), holding each entry to the verified TOC as it is met: regular files only,
 * relative normalised paths, each listed in the TOC with its size, once, with exactly the
 * tar header the writer makes; nothing after the end-of-archive marker but zeros. An
 * entry the TOC does not list stops the index there, so its work is bounded by the signed
 * TOC, not by the tar. Reads headers and padding only. Throws PayloadError with a code per
 * rule (docs/format.md, section 7).
 */
async function indexTar(reader: HeaderReader, start: number, end: number, expect: Expectations, entries: IndexedEntry[]): Promise<void> {
  const met = new Set<string>([TOC_PATH]);
  let pos = start;
  let pax: Map<string, string> | undefined;
  let headerOffset = start;
  for (;;) {
    if (pos + BLOCK_SIZE > end) throw new PayloadError('AG_TRUNCATED', `the payload ends inside the tar at byte ${pos} (no end-of-archive marker)`, { hint: 'copy the file again' });
    const block = await reader.read(pos, BLOCK_SIZE, 'tar header');
    if (isZeroBlock(block)) {
      if (pax) throw new PayloadError('AG_TAR_HEADER', `a pax header at byte ${headerOffset} belongs to no entry`);
      await checkTrailer(reader, pos, end);
      break;
    }
    const raw = parseHeaderBlock(block, pos);
    const dataStart = pos + BLOCK_SIZE;
    if (raw.typeflag === TYPE_PAX_HEADER) {
      if (pax) throw new PayloadError('AG_TAR_HEADER', `two pax headers in a row at byte ${pos}`);
      if (raw.size > MAX_PAX_BYTES) throw new PayloadError('AG_TAR_HEADER', `pax header at byte ${pos} is larger than ${MAX_PAX_BYTES} bytes`);
      if (dataStart + raw.size > end) throw new PayloadError('AG_TRUNCATED', `pax header at byte ${pos} runs past the end of the payload`);
      pax = parsePaxRecords(await reader.read(dataStart, raw.size, 'pax header'), pos);
      for (const key of pax.keys()) {
        if (key !== 'path' && key !== 'size') throw new PayloadError('AG_TAR_HEADER', `pax header at byte ${pos} has the unsupported key '${key.slice(0, 40)}'`);
      }
      headerOffset = pos;
      pos = dataStart + raw.size + paddingFor(raw.size);
      continue;
    }
    if (!pax) headerOffset = pos;
    let path = raw.name;
    let size = raw.size;
    if (pax) {
      if (pax.has('path')) path = pax.get('path')!;
      if (pax.has('size')) {
        const text = pax.get('size')!;
        if (!/^\d{1,16}$/.test(text)) throw new PayloadError('AG_TAR_HEADER', `pax header before byte ${pos} has an invalid size`);
        size = Number(text);
      }
      pax = undefined;
    }
    if (raw.typeflag !== TYPE_FILE && raw.typeflag !== TYPE_FILE_OLD) {
      throw new PayloadError('AG_ENTRY_TYPE', `entry '${path}' is a ${typeName(raw.typeflag)}${raw.linkname ? ` to '${raw.linkname}'` : ''}; only regular files are allowed`);
    }
    const problem = entryPathProblem(path);
    if (problem) throw new PayloadError('AG_ENTRY_PATH', `entry path '${path}' ${problem}`);
    if (met.has(path)) throw new PayloadError('AG_DUPLICATE_ENTRY', `entry '${path}' appears twice`);
    if (dataStart + size > end) throw new PayloadError('AG_TRUNCATED', `entry '${path}' runs past the end of the payload`, { hint: 'copy the file again' });
    const listed = checkListed(expect, path, size);
    met.add(listed.path);
    // Tar headers are not signed, so each must be exactly the one the writer makes from
    // signed data (path and size from the TOC, mode from its file list, time from
    // `created`): no owner, set-id bit, sparse or rename trick can ride along unsigned.
    const expected = encodeFileHeader({ path, size, mode: expect.files.get(path)?.mode ?? 0o644, mtime: expect.mtime });
    if (dataStart - headerOffset !== expected.length || !(await reader.read(headerOffset, expected.length, 'tar header')).equals(expected)) {
      throw new PayloadError('AG_TAR_HEADER', `the tar header of '${path}' is not the one this format writes (owner, mode, time or extra records differ)`);
    }
    entries.push({ path: listed.path, size, offset: dataStart, mode: raw.mode & 0o777, headerOffset });
    const padding = paddingFor(size);
    if (padding && !isZeroBlock(await reader.read(dataStart + size, padding, `padding of '${path}'`))) {
      throw new PayloadError('AG_TAR_HEADER', `the padding after entry '${path}' is not zeros`);
    }
    pos = dataStart + size + padding;
  }
  if (met.size - 1 !== expect.listed.size) {
    const missing = [...expect.listed.keys()].filter((p) => !met.has(p));
    throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists '${missing[0]}'${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}, missing from the payload`);
  }
  for (const f of expect.files.values()) {
    if (!met.has(f.path)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC's file ${f.target} has no entry`);
  }
}

/** After the first zero block: a second one, then only zero padding (at most one tar record). */
async function checkTrailer(reader: HeaderReader, pos: number, end: number): Promise<void> {
  const rest = end - pos;
  if (rest < 2 * BLOCK_SIZE) throw new PayloadError('AG_TRUNCATED', 'the end-of-archive marker is cut short');
  if (rest > 2 * BLOCK_SIZE + 20 * BLOCK_SIZE) throw new PayloadError('AG_TRAILING_DATA', `${rest - 2 * BLOCK_SIZE} bytes follow the end of the tar inside the payload`);
  if (!isZeroBlock(await reader.read(pos, rest, 'end-of-archive marker'))) {
    throw new PayloadError('AG_TRAILING_DATA', 'data follows the end-of-archive marker inside the payload');
  }
}

function checkSignature(header: HeaderFields, tocBytes: Buffer, options: OpenOptions): SignatureStatus {
  const keys = options.trustedKeys ?? [];
  const mustVerify = keys.length > 0 || options.requireSignature === true;
  if (!header.signature) {
    if (mustVerify && !options.allowUnverified) throw new PayloadError('AG_UNSIGNED', 'the file is not signed', { hint: 'build it with --key PRIVATE.pem, or allow unsigned files explicitly' });
    return { status: 'unsigned', keyId: '' };
  }
  if (!mustVerify) return { status: 'unchecked', keyId: header.keyId };
  const key = keys.find((k) => k.keyId === header.keyId);
  if (!key && options.allowUnverified) return { status: 'unchecked', keyId: header.keyId };
  if (!key) {
    throw new PayloadError('AG_UNKNOWN_KEY', `the file is signed by key ${header.keyId}, which is not trusted here`, {
      hint: keys.length ? `trusted keys: ${keys.map((k) => `${k.keyId} (${k.source})`).join(', ')}` : 'add the signer\'s .pub file to the trusted keys',
    });
  }
  if (!verifyBytes(tocBytes, header.signature, key.key)) {
    throw new PayloadError('AG_BAD_SIGNATURE', `the signature does not verify with key ${key.keyId} (${key.source}); the file was altered or signed by another key with the same id`);
  }
  return { status: 'verified', keyId: header.keyId, keySource: key.source };
}

function tocDigestError(changed = false): PayloadError {
  return new PayloadError(
    'AG_TOC_DIGEST',
    changed ? 'the TOC changed while it was read; the file is being written or altered' : 'the TOC does not match TOC_SHA256 in the header; the file is damaged or altered',
    { hint: 'copy the file again' },
  );
}

/** Bytes per read when a large TOC is read again. */
const REREAD_CHUNK = 1024 * 1024;

/**
 * `entry`'s bytes again, in chunks of REREAD_CHUNK, checked at the end against `sha256`
 * (hex): throws AG_TOC_DIGEST when they changed since the first reading, AG_TRUNCATED
 * when the file became shorter. Exported for tests.
 */
export async function* rereadEntry(fh: FileHandle, entry: IndexedEntry, sha256: string): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  for (let done = 0; done < entry.size; ) {
    const chunk = await readAt(fh, entry.offset + done, Math.min(REREAD_CHUNK, entry.size - done), `entry '${entry.path}'`);
    hash.update(chunk);
    done += chunk.length;
    yield chunk;
  }
  if (hash.digest('hex') !== sha256) throw tocDigestError(true);
}

/** Reads one small entry whole (TOC, index.json, a manifest). */
export async function readSmallEntry(fh: FileHandle, entry: IndexedEntry, limit: number): Promise<Buffer> {
  if (entry.size > limit) throw new PayloadError('AG_ENTRY_SIZE', `entry '${entry.path}' is ${entry.size} bytes, more than the ${limit} allowed`);
  return readAt(fh, entry.offset, entry.size, `entry '${entry.path}'`);
}

/**
 * Reads the first entry, which must be the TOC where the header says, checks it against
 * TOC_SHA256 and the signature, and parses it: all before the rest of the tar is read.
 * Throws AG_TOC_MISSING, AG_HEADER, AG_TRUNCATED, AG_ENTRY_SIZE, AG_TOC_DIGEST, the
 * signature's codes, AG_TOC_INVALID, AG_TAR_HEADER.
 */
async function readSignedToc(fh: FileHandle, reader: HeaderReader, header: HeaderFields, end: number, options: OpenOptions) {
  const pos = header.payloadOffset;
  if (pos + BLOCK_SIZE > end) throw new PayloadError('AG_TRUNCATED', 'the payload is shorter than one tar header', { hint: 'copy the file again' });
  const block = await reader.read(pos, BLOCK_SIZE, 'tar header');
  if (isZeroBlock(block)) throw new PayloadError('AG_TOC_MISSING', `the payload is empty; its first entry must be ${TOC_PATH}`);
  const raw = parseHeaderBlock(block, pos);
  if (raw.typeflag === TYPE_PAX_HEADER || raw.name !== TOC_PATH) throw new PayloadError('AG_TOC_MISSING', `the first entry of the payload is not ${TOC_PATH}`);
  if (raw.typeflag !== TYPE_FILE && raw.typeflag !== TYPE_FILE_OLD) throw new PayloadError('AG_ENTRY_TYPE', `entry '${TOC_PATH}' is a ${typeName(raw.typeflag)}; only regular files are allowed`);
  const tocEntry: IndexedEntry = { path: TOC_PATH, size: raw.size, offset: pos + BLOCK_SIZE, mode: raw.mode & 0o777, headerOffset: pos };
  if (tocEntry.offset !== header.tocOffset || tocEntry.size !== header.tocSize) {
    throw new PayloadError('AG_HEADER', 'the header TOC_OFFSET/TOC_SIZE do not match the payload');
  }
  if (tocEntry.offset + tocEntry.size > end) throw new PayloadError('AG_TRUNCATED', `entry '${TOC_PATH}' runs past the end of the payload`, { hint: 'copy the file again' });
  let tocBytes: Buffer | undefined = await readSmallEntry(fh, tocEntry, MAX_TOC_BYTES);
  if (sha256Hex(tocBytes) !== header.tocSha256) throw tocDigestError();
  const signature = checkSignature(header, tocBytes, options);
  // A large TOC is let go once checked and parsed from a second reading (digest checked
  // again at its end): its bytes and its items are never in memory together.
  const input = tocEntry.size > MAX_FREE_FORM_TOC_BYTES ? { size: tocEntry.size, chunks: rereadEntry(fh, tocEntry, header.tocSha256) } : tocBytes;
  tocBytes = undefined;
  const toc = await parseToc(input);
  if (toc.name !== header.name || toc.version !== header.version || toc.created !== header.created) {
    throw new PayloadError('AG_HEADER', `the header says ${header.name} ${header.version}, the signed TOC says ${toc.name} ${toc.version}`);
  }
  if ((header.format === FORMAT_WITH_RUNTIME) !== (toc.runtime !== undefined)) {
    throw new PayloadError('AG_HEADER', `the header says format ${header.format}, and the signed TOC ${toc.runtime ? 'names' : 'names no'} runtime`);
  }
  const expected = encodeFileHeader({ path: TOC_PATH, size: tocEntry.size, mode: 0o644, mtime: Math.floor(Date.parse(toc.created) / 1000) });
  if (!(await reader.read(pos, BLOCK_SIZE, 'tar header')).equals(expected)) {
    throw new PayloadError('AG_TAR_HEADER', `the tar header of '${TOC_PATH}' is not the one this format writes (owner, mode, time or extra records differ)`);
  }
  const padding = paddingFor(tocEntry.size);
  if (padding && !isZeroBlock(await reader.read(tocEntry.offset + tocEntry.size, padding, `padding of '${TOC_PATH}'`))) {
    throw new PayloadError('AG_TAR_HEADER', `the padding after entry '${TOC_PATH}' is not zeros`);
  }
  return { toc, tocEntry, signature, next: tocEntry.offset + tocEntry.size + padding };
}

/** What `readSignedHeader` found: the header's fields and the signature of its TOC. */
export interface SignedHeader {
  header: HeaderFields;
  signature: SignatureStatus;
}

/**
 * The first checks of `openPayload` only: header and size, then the TOC's bytes against
 * TOC_SHA256 and its signature. The TOC is not parsed and no other entry is read, so it
 * costs the same whatever the release holds: enough to know that a file is a release
 * whose signed TOC is already known (a re-import), nothing about its entries. Throws
 * PayloadError as openPayload does for those checks.
 */
export async function readSignedHeader(file: string, options: OpenOptions = {}): Promise<SignedHeader> {
  const fh = await openFile(file);
  try {
    const { header, expected } = await readCheckedHeader(fh, file);
    const tocEntry: IndexedEntry = { path: TOC_PATH, offset: header.tocOffset, size: header.tocSize, mode: 0o644, headerOffset: header.tocOffset - BLOCK_SIZE };
    if (tocEntry.offset + tocEntry.size > expected) throw new PayloadError('AG_TRUNCATED', `entry '${TOC_PATH}' runs past the end of the payload`, { hint: 'copy the file again' });
    const tocBytes = await readSmallEntry(fh, tocEntry, MAX_TOC_BYTES);
    if (sha256Hex(tocBytes) !== header.tocSha256) throw tocDigestError();
    return { header, signature: checkSignature(header, tocBytes, options) };
  } finally {
    await fh.close();
  }
}

/** `file` opened for reading. Throws AG_NOT_FOUND. */
async function openFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (cause) {
    throw new PayloadError('AG_NOT_FOUND', `cannot open ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause });
  }
}

/**
 * The header of the open .bin, and the file's size held to it: `expected` is where the
 * payload ends. Throws AG_NOT_FOUND (not a regular file), the header's own errors,
 * AG_TRUNCATED or AG_TRAILING_DATA.
 */
async function readCheckedHeader(fh: FileHandle, file: string): Promise<{ header: HeaderFields; fileSize: number; expected: number }> {
  const info = await fh.stat();
  if (!info.isFile()) throw new PayloadError('AG_NOT_FOUND', `${file} is not a regular file`);
  const fileSize = info.size;
  const header = parseHeader(await readAt(fh, 0, Math.min(fileSize, 4 * HEADER_SIZE), 'the header'));
  const expected = header.payloadOffset + header.payloadSize;
  if (fileSize < expected) throw new PayloadError('AG_TRUNCATED', `the file is truncated: ${fileSize} bytes, ${expected} expected`, { hint: 'copy the file again' });
  if (fileSize > expected) throw new PayloadError('AG_TRAILING_DATA', `${fileSize - expected} unexpected bytes follow the payload (${expected} expected)`, { hint: 'copy the file again' });
  return { header, fileSize, expected };
}

/**
 * Opens and checks a .bin (docs/format.md, section 5): header and size; then the TOC, the
 * first entry, against TOC_SHA256 and the signature, before anything else is read; then
 * the tar index, held entry by entry to the verified TOC; then the OCI layout closure.
 * Reads headers, the TOC, index.json and manifests only; time and memory grow linearly
 * with the TOC's entries. Throws PayloadError (AG_NOT_AIRGAP, AG_HEADER, AG_FORMAT,
 * AG_TRUNCATED, AG_TRAILING_DATA, AG_TOC_MISSING, AG_TOC_DIGEST, AG_UNSIGNED,
 * AG_UNKNOWN_KEY, AG_BAD_SIGNATURE, AG_TOC_INVALID, AG_ENTRY_TYPE, AG_ENTRY_PATH,
 * AG_DUPLICATE_ENTRY, AG_TOC_MISMATCH, AG_TAR_HEADER, AG_LAYOUT).
 */
export async function openPayload(file: string, options: OpenOptions = {}): Promise<OpenedPayload> {
  const fh = await openFile(file);
  let ok = false;
  try {
    const { header, fileSize, expected } = await readCheckedHeader(fh, file);

    const reader = new HeaderReader(fh, expected);
    const { toc, tocEntry, signature, next } = await readSignedToc(fh, reader, header, expected, options);
    const entries: IndexedEntry[] = [tocEntry];
    await indexTar(reader, next, expected, await expectationsOf(toc), entries);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    checkRuntimeSpans(header, byPath);
    const index = await checkLayout(fh, toc, byPath);
    ok = true;
    const handle = fh;
    return { file, fileSize, header, toc, entries, byPath, signature, index, handle, close: () => handle.close() };
  } finally {
    if (!ok) await fh.close();
  }
}

/**
 * Format 2: the header's RUNTIME_NODE and RUNTIME_CLI are where the runtime entries' data
 * are (sh unpacks them from there). Throws AG_HEADER.
 */
function checkRuntimeSpans(header: HeaderFields, byPath: Map<string, IndexedEntry>): void {
  if (!header.runtime) return;
  for (const [key, span, path] of [
    ['RUNTIME_NODE', header.runtime.node, RUNTIME_NODE_PATH],
    ['RUNTIME_CLI', header.runtime.cli, RUNTIME_CLI_PATH],
  ] as const) {
    const entry = byPath.get(path);
    if (!entry || entry.offset !== span.offset || entry.size !== span.size) {
      throw new PayloadError('AG_HEADER', `the header's ${key} is not where ${path} is in the payload`);
    }
  }
}

/**
 * oci/oci-layout and oci/index.json are present; every manifest the index names is a blob
 * entry of the right size and digest, and so is every child manifest and blob it needs; the
 * TOC's images, charts and packs are the index's entries. Returns the index's descriptors.
 */
async function checkLayout(fh: FileHandle, toc: Toc, byPath: Map<string, IndexedEntry>): Promise<Descriptor[]> {
  const layout = byPath.get(OCI_LAYOUT_PATH);
  const indexEntry = byPath.get(OCI_INDEX_PATH);
  if (!layout || !indexEntry) throw new PayloadError('AG_LAYOUT', `the payload has no ${!layout ? OCI_LAYOUT_PATH : OCI_INDEX_PATH}`);
  let index: { manifests?: unknown };
  const indexBytes = await readSmallEntry(fh, indexEntry, MAX_MANIFEST_BYTES);
  if (sha256Hex(indexBytes) !== toc.entries.find((e) => e.path === OCI_INDEX_PATH)?.sha256) {
    throw new PayloadError('AG_ENTRY_DIGEST', `${OCI_INDEX_PATH} does not match its sha256 in the TOC`);
  }
  try {
    index = JSON.parse(indexBytes.toString('utf8')) as { manifests?: unknown };
  } catch (cause) {
    if (cause instanceof PayloadError) throw cause;
    throw new PayloadError('AG_LAYOUT', `${OCI_INDEX_PATH} is not valid JSON`, { cause });
  }
  let parsedIndex;
  try {
    parsedIndex = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: index.manifests })), '');
  } catch (cause) {
    throw new PayloadError('AG_LAYOUT', `${OCI_INDEX_PATH} ${(cause as Error).message}`, { cause });
  }
  if (parsedIndex.kind !== 'index') throw new PayloadError('AG_LAYOUT', `${OCI_INDEX_PATH} is not an index`);
  const descriptors = parsedIndex.children;
  /** Digest → whether it is an index, for every manifest already read. */
  const checked = new Map<string, boolean>();
  const needBlob = (d: Descriptor, why: string): IndexedEntry => {
    const entry = byPath.get(blobPath(d.digest));
    if (!entry) throw new PayloadError('AG_LAYOUT', `${why} needs blob ${d.digest}, which is not in the payload`);
    if (entry.size !== d.size) throw new PayloadError('AG_LAYOUT', `blob ${d.digest} is ${entry.size} bytes, ${why} says ${d.size}`);
    return entry;
  };
  const visit = async (d: Descriptor, why: string, depth: number): Promise<void> => {
    const entry = needBlob(d, why);
    const seenAsIndex = checked.get(d.digest);
    if (seenAsIndex !== undefined) {
      if (seenAsIndex !== isIndexMediaType(d.mediaType)) throw new PayloadError('AG_LAYOUT', `${why} names ${d.digest} with media type ${d.mediaType}, which it is not`);
      return;
    }
    if (depth > 4) throw new PayloadError('AG_LAYOUT', `indexes nest too deep under ${why}`);
    const bytes = await readSmallEntry(fh, entry, MAX_MANIFEST_BYTES);
    if (sha256Digest(bytes) !== d.digest) throw new PayloadError('AG_ENTRY_DIGEST', `manifest ${d.digest} does not match its digest`);
    let parsed;
    try {
      parsed = parseManifest(bytes, d.mediaType);
    } catch (cause) {
      throw new PayloadError('AG_LAYOUT', `manifest ${d.digest} ${(cause as Error).message}`, { cause });
    }
    if (isIndexMediaType(d.mediaType) !== (parsed.kind === 'index')) throw new PayloadError('AG_LAYOUT', `${why} names ${d.digest} with media type ${d.mediaType}, which it is not`);
    checked.set(d.digest, parsed.kind === 'index');
    if (parsed.kind === 'index') for (const child of parsed.children) await visit(child, `index ${d.digest}`, depth + 1);
    else for (const blob of parsed.blobs) needBlob(blob, `manifest ${d.digest}`);
  };
  const byRef = new Map<string, Descriptor>();
  for (const d of descriptors) {
    const ref = d.annotations?.[ANNOTATION_REF_NAME];
    if (!ref) throw new PayloadError('AG_LAYOUT', `${OCI_INDEX_PATH} has a manifest ${d.digest} with no ${ANNOTATION_REF_NAME}`);
    if (byRef.has(ref)) throw new PayloadError('AG_LAYOUT', `${OCI_INDEX_PATH} names ${ref} twice`);
    byRef.set(ref, d);
    await visit(d, ref, 0);
  }
  const lists: Array<[string, Array<{ target: string; digest: string }>]> = [
    ['image', toc.images],
    ['chart', toc.charts],
    ['pack', toc.packs],
  ];
  let count = 0;
  for (const [kind, list] of lists) {
    for (const item of list) {
      const d = byRef.get(item.target);
      if (!d || d.digest !== item.digest || d.annotations?.[ANNOTATION_KIND] !== kind) {
        throw new PayloadError('AG_TOC_MISMATCH', `the TOC's ${kind} ${item.target} (${item.digest}) is not in ${OCI_INDEX_PATH}`);
      }
      count++;
    }
  }
  if (count !== byRef.size) throw new PayloadError('AG_TOC_MISMATCH', `${OCI_INDEX_PATH} names ${byRef.size} artifacts, the TOC ${count}`);
  return descriptors;
}

export interface VerifyProgress {
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Checks the sha256 of the entries at `paths` against the TOC, reading only those (a
 * transfer that sends some blobs checks just those before its first write), two at a time
 * so that one entry's reads overlap the other's hashing. Progress is in bytes of those
 * entries. Throws PayloadError AG_ENTRY_DIGEST, AG_NOT_FOUND, AG_TRUNCATED, AG_READ_FAILED.
 */
export async function verifyEntries(opened: OpenedPayload, paths: readonly string[], onProgress?: (p: VerifyProgress) => void): Promise<void> {
  const expected = new Map(opened.toc.entries.map((e) => [e.path, e.sha256]));
  const bytesTotal = paths.reduce((n, p) => n + (opened.byPath.get(p)?.size ?? 0), 0);
  let bytesDone = 0;
  await runPool(paths, 2, undefined, async (path) => {
    const hash = createHash('sha256');
    for await (const chunk of openEntryStream(opened, path)) {
      hash.update(chunk as Buffer);
      bytesDone += (chunk as Buffer).length;
      onProgress?.({ bytesDone, bytesTotal });
    }
    if (hash.digest('hex') !== expected.get(path)) {
      throw new PayloadError('AG_ENTRY_DIGEST', `entry '${path}' does not match its sha256 in the TOC; the file is damaged or altered`, { hint: 'copy the file again' });
    }
  });
}

/**
 * Reads the payload once: checks the payload sha256 of the header and the sha256 of every
 * entry against the TOC. Throws PayloadError AG_PAYLOAD_DIGEST or AG_ENTRY_DIGEST.
 */
export async function verifyPayloadData(opened: OpenedPayload, onProgress?: (p: VerifyProgress) => void): Promise<void> {
  const { header } = opened;
  const expected = new Map(opened.toc.entries.map((e) => [e.path, e.sha256]));
  expected.set(TOC_PATH, header.tocSha256);
  const payloadHash = createHash('sha256');
  const entries = opened.entries;
  let current = 0;
  let entryHash: Hash | undefined;
  let pos = header.payloadOffset;
  const end = header.payloadOffset + header.payloadSize;
  const finish = (entry: IndexedEntry) => {
    const got = (entryHash ?? createHash('sha256')).digest('hex');
    entryHash = undefined;
    if (got !== expected.get(entry.path)) {
      throw new PayloadError('AG_ENTRY_DIGEST', `entry '${entry.path}' does not match its sha256 in the TOC; the file is damaged or altered`, { hint: 'copy the file again' });
    }
  };
  const stream = new EntryStream(opened.handle, { path: 'the payload', offset: pos, size: end - pos }, 1024 * 1024);
  for await (const raw of stream) {
    const chunk = raw as Buffer;
    payloadHash.update(chunk);
    const chunkEnd = pos + chunk.length;
    while (current < entries.length) {
      const e = entries[current]!;
      const from = Math.max(pos, e.offset);
      const to = Math.min(chunkEnd, e.offset + e.size);
      if (e.offset >= chunkEnd && e.size > 0) break;
      if (to > from) (entryHash ??= createHash('sha256')).update(chunk.subarray(from - pos, to - pos));
      if (e.offset + e.size > chunkEnd) break;
      finish(e);
      current++;
    }
    pos = chunkEnd;
    onProgress?.({ bytesDone: pos - header.payloadOffset, bytesTotal: header.payloadSize });
  }
  if (pos !== end || current !== entries.length) throw new PayloadError('AG_TRUNCATED', 'the file changed while it was read');
  if (payloadHash.digest('hex') !== header.payloadSha256) {
    throw new PayloadError('AG_PAYLOAD_DIGEST', 'the payload does not match PAYLOAD_SHA256 in the header; the file is damaged or altered', { hint: 'copy the file again' });
  }
}

/** Bytes per read of an entry stream. */
const ENTRY_READ_BYTES = 256 * 1024;

/**
 * One entry's bytes, read by offset through the open handle. Not `FileHandle.createReadStream`:
 * that ties each stream to the shared handle (a listener per stream, kept by a reader that
 * stops early, and a destroy that may close the handle), and ends early without an error
 * when the file was cut short after it was opened.
 */
class EntryStream extends Readable {
  private position: number;
  private remaining: number;

  constructor(
    private readonly handle: FileHandle,
    private readonly entry: Pick<IndexedEntry, 'path' | 'offset' | 'size'>,
    private readonly chunk = ENTRY_READ_BYTES,
  ) {
    super({ highWaterMark: chunk });
    this.position = entry.offset;
    this.remaining = entry.size;
  }

  override _read(): void {
    if (this.remaining === 0) {
      this.push(null);
      return;
    }
    const length = Math.min(this.remaining, this.chunk);
    const buffer = Buffer.allocUnsafe(length);
    this.handle.read(buffer, 0, length, this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) {
          const got = this.entry.size - this.remaining;
          this.destroy(new PayloadError('AG_TRUNCATED', `entry '${this.entry.path}' is cut short at ${got} of ${this.entry.size} bytes; the file changed or was truncated`, { hint: 'copy the file again' }));
          return;
        }
        this.position += bytesRead;
        this.remaining -= bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
        if (this.remaining === 0) this.push(null);
      },
      (cause: unknown) => this.destroy(readFailed(`entry '${this.entry.path}'`, this.position, cause)),
    );
  }
}

/** An entry's bytes by position, for a reader that brings its own buffer (no stream, no allocation per read). */
export interface EntrySource {
  /** Entry bytes. */
  size: number;
  /**
   * Reads up to `length` bytes at `position` (0 is the entry's first byte) into `buffer`
   * from its start; resolves how many, 0 only at the entry's end. Rejects AG_TRUNCATED when
   * the file ends before the entry does, AG_READ_FAILED when the read fails.
   */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
}

/** The positional reader of one entry (see EntrySource). Throws AG_NOT_FOUND when there is no such entry. */
export function entrySource(opened: OpenedPayload, path: string): EntrySource {
  const entry = opened.byPath.get(path);
  if (!entry) throw new PayloadError('AG_NOT_FOUND', `no entry '${path}' in ${opened.file}`);
  return {
    size: entry.size,
    async read(buffer, position, length) {
      const want = Math.min(length, entry.size - position, buffer.length);
      if (want <= 0) return 0;
      const { bytesRead } = await opened.handle.read(buffer, 0, want, entry.offset + position).catch((cause: unknown) => {
        throw readFailed(`entry '${entry.path}'`, entry.offset + position, cause);
      });
      if (bytesRead === 0) {
        throw new PayloadError('AG_TRUNCATED', `entry '${entry.path}' is cut short at ${position} of ${entry.size} bytes; the file changed or was truncated`, { hint: 'copy the file again' });
      }
      return bytesRead;
    },
  };
}

/** A stream of one entry's data, read by offset straight from the .bin. Errors AG_TRUNCATED, AG_READ_FAILED. */
export function openEntryStream(opened: OpenedPayload, path: string): Readable {
  const entry = opened.byPath.get(path);
  if (!entry) throw new PayloadError('AG_NOT_FOUND', `no entry '${path}' in ${opened.file}`);
  return new EntryStream(opened.handle, entry);
}
