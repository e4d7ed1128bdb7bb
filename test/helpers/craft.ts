/**
 * Crafts .bin files byte by byte, including ones the builder would never write (links,
 * devices, `..`, duplicates, TOC mismatches), to check that the reader refuses them.
 * The header, TOC digest and signature are made correctly unless a test changes them,
 * so each crafted file is refused for the one reason the test is about.
 */
import { writeFile } from 'node:fs/promises';
import { createHash, type KeyObject } from 'node:crypto';
import { encodeFileHeader, endOfArchive, paddingFor, ustarBlock } from '../../src/format/tar.js';
import { renderHeader, type Span } from '../../src/format/header.js';
import { serializeToc, type Toc } from '../../src/format/toc.js';
import { HEADER_SIZE, OCI_INDEX_PATH, OCI_LAYOUT_CONTENT, OCI_LAYOUT_PATH, RUNTIME_CLI_PATH, RUNTIME_NODE_PATH, TOC_PATH } from '../../src/format/layout.js';
import { signBytes, keyIdOf } from '../../src/format/keys.js';
import { createPublicKey } from 'node:crypto';

export interface CraftEntry {
  path: string;
  data?: Buffer;
  /** Tar type flag; '0' (regular file) by default. */
  type?: string;
  linkname?: string;
  /** Leave this entry out of the default TOC. */
  unlisted?: boolean;
  /** Permission bits written in the tar header (0o644 by default). */
  mode?: number;
  /** Header bytes to write instead of the canonical ones. */
  header?: Buffer;
  /** Padding bytes to write instead of zeros. */
  padding?: Buffer;
}

export interface CraftOptions {
  /** Entries after the TOC; a minimal OCI layout is added first unless `bare`. */
  entries?: CraftEntry[];
  bare?: boolean;
  /** Put the TOC last instead of first. */
  tocLast?: boolean;
  /** Change the TOC (object) or replace its bytes. */
  toc?: (toc: Toc) => Toc | Buffer;
  key?: KeyObject;
  /** Change the rendered sh header (it stays HEADER_SIZE bytes). */
  editHeader?: (header: string) => string;
  name?: string;
  version?: string;
  /**
   * Format 2: the header gets RUNTIME_NODE and RUNTIME_CLI, where runtime/node.gz and
   * runtime/airgap.mjs.gz are (0 0 when absent), passed through the function if one is given.
   */
  runtime?: true | ((spans: { node: Span; cli: Span }) => { node: Span; cli: Span });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes a crafted .bin to `file`; returns its bytes. */
export async function craftBin(file: string, options: CraftOptions = {}): Promise<Buffer> {
  const base: CraftEntry[] = options.bare
    ? []
    : [
        { path: OCI_LAYOUT_PATH, data: Buffer.from(OCI_LAYOUT_CONTENT) },
        { path: OCI_INDEX_PATH, data: Buffer.from('{"schemaVersion":2,"manifests":[]}') },
      ];
  const entries = [...base, ...(options.entries ?? [])];
  const name = options.name ?? 'crafted';
  const version = options.version ?? '1.0.0';
  const created = '2026-01-01T00:00:00Z';
  const listed = entries.filter((e) => !e.unlisted && (e.type ?? '0') === '0');
  let toc: Toc = {
    apiVersion: 'airgap/v1',
    kind: 'TableOfContents',
    name,
    version,
    created,
    images: [],
    charts: [],
    packs: [],
    files: listed
      .filter((e) => e.path.startsWith('files/'))
      .map((e) => ({ target: e.path.slice('files/'.length), path: e.path, size: (e.data ?? Buffer.alloc(0)).length, sha256: sha(e.data ?? Buffer.alloc(0)), mode: (e.mode ?? 0o644) & 0o777 })),
    entries: listed.map((e) => ({ path: e.path, size: (e.data ?? Buffer.alloc(0)).length, sha256: sha(e.data ?? Buffer.alloc(0)) })),
  };
  let tocBytes: Buffer;
  if (options.toc) {
    const changed = options.toc(toc);
    tocBytes = Buffer.isBuffer(changed) ? changed : serializeToc((toc = changed));
  } else {
    tocBytes = serializeToc(toc);
  }
  const parts: Buffer[] = [];
  const mtime = Date.parse(created) / 1000;
  const tocHeader = encodeFileHeader({ path: TOC_PATH, size: tocBytes.length, mode: 0o644, mtime });
  const tocParts = [tocHeader, tocBytes, Buffer.alloc(paddingFor(tocBytes.length))];
  if (!options.tocLast) parts.push(...tocParts);
  const spans = { node: { offset: 0, size: 0 }, cli: { offset: 0, size: 0 } };
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const type = e.type ?? '0';
    const header =
      e.header ?? (type === '0' ? encodeFileHeader({ path: e.path, size: data.length, mode: e.mode ?? 0o644, mtime }) : ustarBlock(e.path, data.length, 0o644, mtime, type, e.linkname ?? ''));
    const offset = HEADER_SIZE + parts.reduce((n, p) => n + p.length, 0) + header.length;
    if (e.path === RUNTIME_NODE_PATH) spans.node = { offset, size: data.length };
    if (e.path === RUNTIME_CLI_PATH) spans.cli = { offset, size: data.length };
    parts.push(header, data, e.padding ?? Buffer.alloc(paddingFor(data.length)));
  }
  if (options.tocLast) parts.push(...tocParts);
  parts.push(endOfArchive());
  const payload = Buffer.concat(parts);
  const header = renderHeader({
    format: options.runtime ? '2' : '1',
    ...(options.runtime ? { runtime: options.runtime === true ? spans : options.runtime(spans) } : {}),
    name,
    version,
    created,
    payloadOffset: HEADER_SIZE,
    payloadSize: payload.length,
    payloadSha256: sha(payload),
    tocOffset: HEADER_SIZE + tocHeader.length,
    tocSize: tocBytes.length,
    tocSha256: sha(tocBytes),
    keyId: options.key ? keyIdOf(createPublicKey(options.key)) : '',
    signature: options.key ? signBytes(tocBytes, options.key) : '',
  });
  const edited = options.editHeader ? Buffer.from(options.editHeader(header.toString('latin1')), 'latin1').subarray(0, HEADER_SIZE) : header;
  const bytes = Buffer.concat([edited, payload]);
  await writeFile(file, bytes, { mode: 0o755 });
  return bytes;
}
