/**
 * The tar records of the payload (POSIX.1-2001 pax interchange format, ustar headers with
 * 'x' extended headers where a name or size does not fit). The payload format is what this
 * project exists for, so the encoder and the header parser are ours: the writer needs exact
 * control of every byte, and the reader indexes entries by seeking from header to header
 * without reading any data, which a streaming tar library cannot do.
 */
import { PayloadError } from '../kit/errors.js';

export const BLOCK_SIZE = 512;

/** Type flags (POSIX ustar / pax). */
export const TYPE_FILE = '0';
export const TYPE_FILE_OLD = '\0';
export const TYPE_PAX_HEADER = 'x';

const TYPE_NAMES: Record<string, string> = {
  '1': 'hard link',
  '2': 'symbolic link',
  '3': 'character device',
  '4': 'block device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous file',
  g: 'pax global header',
  L: 'GNU long name',
  K: 'GNU long link name',
  S: 'GNU sparse file',
};

/** Human name of a tar type flag, for error messages. */
export function typeName(typeflag: string): string {
  if (typeflag === TYPE_FILE || typeflag === TYPE_FILE_OLD) return 'regular file';
  return TYPE_NAMES[typeflag] ?? `unknown type '${typeflag.replace(/[^\x20-\x7e]/g, '?')}'`;
}

/** Number of padding bytes after `size` bytes of entry data. */
export function paddingFor(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

const MAX_OCTAL_11 = 0o77777777777; // 8 GiB - 1: the largest size a ustar field holds

export interface FileEntryHeader {
  /** Relative path, '/'-separated, UTF-8. */
  path: string;
  /** Data size in bytes. */
  size: number;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
}

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  block.write(value, offset, length, 'utf8');
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  // length-1 octal digits, then NUL
  const digits = Math.trunc(value).toString(8).padStart(length - 1, '0');
  if (digits.length > length - 1) throw new RangeError(`value ${value} does not fit a ${length}-byte tar field`);
  block.write(`${digits}\0`, offset, length, 'ascii');
}

function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum;
}

/**
 * One ustar header block of any type (the writer only makes regular files and pax headers;
 * tests use other types to check that the reader refuses them).
 */
export function ustarBlock(name: string, size: number, mode: number, mtime: number, typeflag: string, linkname = ''): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, mode & 0o7777);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, mtime);
  block.write(typeflag, 156, 1, 'latin1');
  writeString(block, 157, 100, linkname);
  block.write('ustar\x0000', 257, 8, 'ascii');
  writeString(block, 265, 32, 'root');
  writeString(block, 297, 32, 'root');
  return sealHeaderBlock(block);
}

/** Writes the checksum field of a 512-byte header block (POSIX ustar: six octal digits, NUL, space); returns the block. */
export function sealHeaderBlock(block: Buffer): Buffer {
  block.write(`${checksum(block).toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

function paxRecord(key: string, value: string): Buffer {
  // "%d %s=%s\n" where %d counts the whole record, itself included
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length++;
  return Buffer.from(`${length}${body}`, 'utf8');
}

/**
 * Encodes the header blocks of one regular file: a ustar block, preceded by a pax 'x'
 * header when the path is longer than 100 bytes or not ASCII, or the size exceeds 8 GiB.
 * Returns the bytes to write before the entry data (a multiple of 512).
 */
export function encodeFileHeader(entry: FileEntryHeader): Buffer {
  const needsPaxPath = Buffer.byteLength(entry.path) > 100 || /[^\x20-\x7e]/.test(entry.path);
  const needsPaxSize = entry.size > MAX_OCTAL_11;
  if (!needsPaxPath && !needsPaxSize) {
    return ustarBlock(entry.path, entry.size, entry.mode, entry.mtime, TYPE_FILE);
  }
  const records: Buffer[] = [];
  if (needsPaxPath) records.push(paxRecord('path', entry.path));
  if (needsPaxSize) records.push(paxRecord('size', String(entry.size)));
  const pax = Buffer.concat(records);
  const paxName = `PaxHeaders/${entry.path.replace(/[^\x20-\x7e]/g, '_').slice(-80)}`;
  const shortName = entry.path.replace(/[^\x20-\x7e]/g, '_').slice(-100);
  return Buffer.concat([
    ustarBlock(paxName, pax.length, 0o644, entry.mtime, TYPE_PAX_HEADER),
    pax,
    Buffer.alloc(paddingFor(pax.length)),
    ustarBlock(shortName, needsPaxSize ? 0 : entry.size, entry.mode, entry.mtime, TYPE_FILE),
  ]);
}

/** The end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK_SIZE);
}

export interface RawHeader {
  name: string;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

/** True when the block is all zeros (part of the end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function readString(block: Buffer, offset: number, length: number): string {
  const end = block.indexOf(0, offset);
  return block.toString('utf8', offset, end === -1 || end > offset + length ? offset + length : end);
}

function readNumber(block: Buffer, offset: number, length: number, field: string, at: number): number {
  // GNU base-256: high bit of the first byte set
  if (block[offset]! & 0x80) {
    let value = block[offset]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + block[offset + i]!;
    if (!Number.isSafeInteger(value)) throw new PayloadError('AG_TAR_HEADER', `tar header at byte ${at}: ${field} is out of range`);
    return value;
  }
  const text = block.toString('ascii', offset, offset + length).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new PayloadError('AG_TAR_HEADER', `tar header at byte ${at}: ${field} is not an octal number`);
  return parseInt(text, 8);
}

/**
 * Parses one 512-byte ustar header block. `at` is its byte offset in the file, for messages.
 * Throws PayloadError AG_TAR_HEADER when the checksum or a numeric field is wrong.
 */
export function parseHeaderBlock(block: Buffer, at: number): RawHeader {
  if (block.length !== BLOCK_SIZE) throw new PayloadError('AG_TRUNCATED', `tar header at byte ${at} is cut short`);
  const stored = readNumber(block, 148, 8, 'checksum', at);
  if (stored !== checksum(block)) {
    throw new PayloadError('AG_TAR_HEADER', `tar header at byte ${at} has a wrong checksum (flipped bytes or not a tar)`);
  }
  let name = readString(block, 0, 100);
  const magic = block.toString('ascii', 257, 263);
  if (magic === 'ustar\0' || magic === 'ustar ') {
    const prefix = readString(block, 345, 155);
    if (prefix && magic === 'ustar\0') name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: readNumber(block, 100, 8, 'mode', at),
    size: readNumber(block, 124, 12, 'size', at),
    mtime: readNumber(block, 136, 12, 'mtime', at),
    typeflag: block.toString('latin1', 156, 157),
    linkname: readString(block, 157, 100),
  };
}

/**
 * Parses the records of a pax extended header ("%d %s=%s\n", POSIX.1-2001 pax format).
 * Throws PayloadError AG_TAR_HEADER on a malformed record.
 */
export function parsePaxRecords(data: Buffer, at: number): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding
    const space = data.indexOf(0x20, pos);
    const lengthText = space === -1 ? '' : data.toString('ascii', pos, space);
    const length = /^[1-9]\d{0,5}$/.test(lengthText) ? Number(lengthText) : NaN;
    if (!Number.isInteger(length) || length <= 0 || pos + length > data.length || data[pos + length - 1] !== 0x0a) {
      throw new PayloadError('AG_TAR_HEADER', `pax header at byte ${at} has a malformed record`);
    }
    const record = data.toString('utf8', space + 1, pos + length - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new PayloadError('AG_TAR_HEADER', `pax header at byte ${at} has a malformed record`);
    records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return records;
}
