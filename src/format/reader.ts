/**
 * Reading a .bin without running or extracting it (docs/format.md):
 * parse the header as data, index the tar by seeking from header to header (no data is
 * read), enforce the entry rules, check the TOC against its digest and signature and
 * against the index, and check that the OCI layout is closed (every manifest's blobs are
 * present). `verifyPayloadData` then reads the payload once to check the payload digest
 * and every entry's sha256; `openEntryStream` gives one entry's bytes by offset.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { PayloadError } from '../kit/errors.js';
import { parseHeader, type HeaderFields } from './header.js';
import { BLOCK_SIZE, encodeFileHeader, isZeroBlock, paddingFor, parseHeaderBlock, parsePaxRecords, typeName, TYPE_FILE, TYPE_FILE_OLD, TYPE_PAX_HEADER } from './tar.js';
import { collisionKey, entryPathProblem } from './paths.js';
import { MAX_TOC_BYTES, parseToc, type Toc, type TocFile } from './toc.js';
import { verifyBytes, type PublicKeyInfo } from './keys.js';
import { sha256Hex, sha256Digest } from '../kit/digest.js';
import { ANNOTATION_KIND, ANNOTATION_REF_NAME, FILES_DIR, HEADER_SIZE, OCI_INDEX_PATH, OCI_LAYOUT_PATH, TOC_PATH, blobPath, digestOfBlobPath, filePath } from './layout.js';
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
  tocBytes: Buffer;
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

/** Largest pax extended header accepted, in bytes. */
const MAX_PAX_BYTES = 64 * 1024;

async function readAt(fh: FileHandle, position: number, length: number, what: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got !== length) throw new PayloadError('AG_TRUNCATED', `${what} is cut short at byte ${position + got}; the file is truncated`, { hint: 'copy the file again' });
  return buffer;
}

/**
 * Indexes the tar between `start` and `end` (byte offsets in the file) by reading headers
 * only, and enforces the entry rules: regular files only, relative normalised paths, no
 * duplicates (also after case folding and Unicode normalisation), nothing after the
 * end-of-archive marker but zeros. Throws PayloadError with a code per rule.
 */
export async function indexTar(fh: FileHandle, start: number, end: number): Promise<IndexedEntry[]> {
  const entries: IndexedEntry[] = [];
  const seen = new Map<string, string>();
  let pos = start;
  let pax: Map<string, string> | undefined;
  let headerOffset = start;
  for (;;) {
    if (pos + BLOCK_SIZE > end) throw new PayloadError('AG_TRUNCATED', `the payload ends inside the tar at byte ${pos} (no end-of-archive marker)`, { hint: 'copy the file again' });
    const block = await readAt(fh, pos, BLOCK_SIZE, 'tar header');
    if (isZeroBlock(block)) {
      if (pax) throw new PayloadError('AG_TAR_HEADER', `a pax header at byte ${headerOffset} belongs to no entry`);
      await checkTrailer(fh, pos, end);
      return entries;
    }
    const raw = parseHeaderBlock(block, pos);
    const dataStart = pos + BLOCK_SIZE;
    if (raw.typeflag === TYPE_PAX_HEADER) {
      if (pax) throw new PayloadError('AG_TAR_HEADER', `two pax headers in a row at byte ${pos}`);
      if (raw.size > MAX_PAX_BYTES) throw new PayloadError('AG_TAR_HEADER', `pax header at byte ${pos} is larger than ${MAX_PAX_BYTES} bytes`);
      if (dataStart + raw.size > end) throw new PayloadError('AG_TRUNCATED', `pax header at byte ${pos} runs past the end of the payload`);
      pax = parsePaxRecords(await readAt(fh, dataStart, raw.size, 'pax header'), pos);
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
      if (pax.has('linkpath')) throw new PayloadError('AG_ENTRY_TYPE', `entry '${path}' is a link (pax linkpath); only regular files are allowed`);
      pax = undefined;
    }
    if (raw.typeflag !== TYPE_FILE && raw.typeflag !== TYPE_FILE_OLD) {
      throw new PayloadError('AG_ENTRY_TYPE', `entry '${path}' is a ${typeName(raw.typeflag)}${raw.linkname ? ` to '${raw.linkname}'` : ''}; only regular files are allowed`);
    }
    const problem = entryPathProblem(path);
    if (problem) throw new PayloadError('AG_ENTRY_PATH', `entry path '${path}' ${problem}`);
    const key = collisionKey(path);
    const other = seen.get(key);
    if (other !== undefined) {
      throw new PayloadError('AG_DUPLICATE_ENTRY', other === path ? `entry '${path}' appears twice` : `entries '${other}' and '${path}' differ only by case or Unicode normalisation`);
    }
    seen.set(key, path);
    if (dataStart + size > end) throw new PayloadError('AG_TRUNCATED', `entry '${path}' runs past the end of the payload`, { hint: 'copy the file again' });
    entries.push({ path, size, offset: dataStart, mode: raw.mode & 0o777, headerOffset });
    const padding = paddingFor(size);
    if (padding && !isZeroBlock(await readAt(fh, dataStart + size, padding, `padding of '${path}'`))) {
      throw new PayloadError('AG_TAR_HEADER', `the padding after entry '${path}' is not zeros`);
    }
    pos = dataStart + size + padding;
  }
}

/** After the first zero block: a second one, then only zero padding (at most one tar record). */
async function checkTrailer(fh: FileHandle, pos: number, end: number): Promise<void> {
  const rest = end - pos;
  if (rest < 2 * BLOCK_SIZE) throw new PayloadError('AG_TRUNCATED', 'the end-of-archive marker is cut short');
  if (rest > 2 * BLOCK_SIZE + 20 * BLOCK_SIZE) throw new PayloadError('AG_TRAILING_DATA', `${rest - 2 * BLOCK_SIZE} bytes follow the end of the tar inside the payload`);
  if (!isZeroBlock(await readAt(fh, pos, rest, 'end-of-archive marker'))) {
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

/** Reads one small entry whole (TOC, index.json, a manifest). */
export async function readSmallEntry(fh: FileHandle, entry: IndexedEntry, limit: number): Promise<Buffer> {
  if (entry.size > limit) throw new PayloadError('AG_ENTRY_SIZE', `entry '${entry.path}' is ${entry.size} bytes, more than the ${limit} allowed`);
  return readAt(fh, entry.offset, entry.size, `entry '${entry.path}'`);
}

/**
 * Opens and checks a .bin: header, size, tar index and entry rules, TOC digest and
 * signature, TOC against the index, OCI layout closure. Reads headers, the TOC, index.json
 * and manifests only. Throws PayloadError (AG_NOT_AIRGAP, AG_HEADER, AG_FORMAT,
 * AG_TRUNCATED, AG_TRAILING_DATA, AG_ENTRY_TYPE, AG_ENTRY_PATH, AG_DUPLICATE_ENTRY,
 * AG_TOC_DIGEST, AG_TOC_INVALID, AG_TOC_MISMATCH, AG_UNSIGNED, AG_UNKNOWN_KEY,
 * AG_BAD_SIGNATURE, AG_LAYOUT).
 */
export async function openPayload(file: string, options: OpenOptions = {}): Promise<OpenedPayload> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (cause) {
    throw new PayloadError('AG_NOT_FOUND', `cannot open ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause });
  }
  let ok = false;
  try {
    const fileSize = (await fh.stat()).size;
    const head = Buffer.alloc(Math.min(fileSize, 4 * HEADER_SIZE));
    await fh.read(head, 0, head.length, 0);
    const header = parseHeader(head);
    const expected = header.payloadOffset + header.payloadSize;
    if (fileSize < expected) throw new PayloadError('AG_TRUNCATED', `the file is truncated: ${fileSize} bytes, ${expected} expected`, { hint: 'copy the file again' });
    if (fileSize > expected) throw new PayloadError('AG_TRAILING_DATA', `${fileSize - expected} unexpected bytes follow the payload (${expected} expected)`, { hint: 'copy the file again' });

    const entries = await indexTar(fh, header.payloadOffset, expected);
    const tocEntry = entries[0];
    if (!tocEntry || tocEntry.path !== TOC_PATH) throw new PayloadError('AG_TOC_MISSING', `the first entry of the payload is not ${TOC_PATH}`);
    if (tocEntry.offset !== header.tocOffset || tocEntry.size !== header.tocSize) {
      throw new PayloadError('AG_HEADER', 'the header TOC_OFFSET/TOC_SIZE do not match the payload');
    }
    const tocBytes = await readSmallEntry(fh, tocEntry, MAX_TOC_BYTES);
    if (sha256Hex(tocBytes) !== header.tocSha256) {
      throw new PayloadError('AG_TOC_DIGEST', 'the TOC does not match TOC_SHA256 in the header; the file is damaged or altered', { hint: 'copy the file again' });
    }
    const signature = checkSignature(header, tocBytes, options);
    const toc = parseToc(tocBytes);
    if (toc.name !== header.name || toc.version !== header.version || toc.created !== header.created) {
      throw new PayloadError('AG_HEADER', `the header says ${header.name} ${header.version}, the signed TOC says ${toc.name} ${toc.version}`);
    }

    const byPath = new Map(entries.map((e) => [e.path, e]));
    matchTocToIndex(toc, entries);
    await checkCanonicalHeaders(fh, toc, entries);
    const index = await checkLayout(fh, toc, byPath);
    ok = true;
    const handle = fh;
    return { file, fileSize, header, toc, tocBytes, entries, byPath, signature, index, handle, close: () => handle.close() };
  } finally {
    if (!ok) await fh.close();
  }
}

/**
 * Tar headers are not signed, so each must be exactly the one the writer makes from signed
 * data (path and size from the TOC, mode from the TOC's file list, time from `created`):
 * no owner, set-id bit, sparse or rename trick can ride along unsigned.
 */
async function checkCanonicalHeaders(fh: FileHandle, toc: Toc, entries: IndexedEntry[]): Promise<void> {
  const mtime = Math.floor(Date.parse(toc.created) / 1000);
  const modes = new Map(toc.files.map((f) => [f.path, f.mode]));
  for (const entry of entries) {
    const expected = encodeFileHeader({ path: entry.path, size: entry.size, mode: modes.get(entry.path) ?? 0o644, mtime });
    const actual = entry.offset - entry.headerOffset === expected.length ? await readAt(fh, entry.headerOffset, expected.length, 'tar header') : undefined;
    if (!actual?.equals(expected)) {
      throw new PayloadError('AG_TAR_HEADER', `the tar header of '${entry.path}' is not the one this format writes (owner, mode, time or extra records differ)`);
    }
  }
}

/**
 * Every entry but the TOC is listed in the TOC with the same size, and nothing else is;
 * each is the OCI layout file, the index, a blob named by its own sha256, or a file of the
 * TOC's file list (one entry per target, also after case folding).
 */
function matchTocToIndex(toc: Toc, entries: IndexedEntry[]): void {
  const listed = new Map(toc.entries.map((e) => [e.path, e]));
  const files = new Map<string, TocFile>();
  const targets = new Set<string>();
  for (const f of toc.files) {
    const key = collisionKey(f.target);
    if (targets.has(key)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists the file ${f.target} twice`);
    if (f.path !== filePath(f.target)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC's file ${f.target} is not stored at ${filePath(f.target)}`);
    targets.add(key);
    files.set(f.path, f);
  }
  for (const entry of entries.slice(1)) {
    const t = listed.get(entry.path);
    if (!t) throw new PayloadError('AG_TOC_MISMATCH', `entry '${entry.path}' is in the payload but not in the TOC`);
    if (t.size !== entry.size) throw new PayloadError('AG_TOC_MISMATCH', `entry '${entry.path}' is ${entry.size} bytes, the TOC says ${t.size}`);
    listed.delete(entry.path);
    const digest = digestOfBlobPath(entry.path);
    if (digest !== undefined) {
      if (digest !== `sha256:${t.sha256}`) throw new PayloadError('AG_TOC_MISMATCH', `blob '${entry.path}' has sha256 ${t.sha256} in the TOC, not its name`);
    } else if (entry.path.startsWith(`${FILES_DIR}/`)) {
      const f = files.get(entry.path);
      if (!f || f.size !== t.size || f.sha256 !== t.sha256) throw new PayloadError('AG_TOC_MISMATCH', `entry '${entry.path}' is not in the TOC's file list`);
      files.delete(entry.path);
    } else if (entry.path !== OCI_LAYOUT_PATH && entry.path !== OCI_INDEX_PATH) {
      throw new PayloadError('AG_TOC_MISMATCH', `entry '${entry.path}' is neither a blob, a file nor the OCI layout`);
    }
  }
  if (listed.has(TOC_PATH)) throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists itself`);
  const missing = [...listed.keys()];
  if (missing.length) throw new PayloadError('AG_TOC_MISMATCH', `the TOC lists '${missing[0]}'${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}, missing from the payload`);
  for (const f of files.values()) throw new PayloadError('AG_TOC_MISMATCH', `the TOC's file ${f.target} has no entry`);
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
  const stream = opened.handle.createReadStream({ start: pos, end: end - 1, highWaterMark: 1024 * 1024, autoClose: false });
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

/** A stream of one entry's data, read by offset straight from the .bin. */
export function openEntryStream(opened: OpenedPayload, path: string): Readable {
  const entry = opened.byPath.get(path);
  if (!entry) throw new PayloadError('AG_NOT_FOUND', `no entry '${path}' in ${opened.file}`);
  if (entry.size === 0) return Readable.from([]);
  return opened.handle.createReadStream({ start: entry.offset, end: entry.offset + entry.size - 1, highWaterMark: 256 * 1024, autoClose: false });
}
