/**
 * Resumable uploads of .bin files, streamed to disk in chunks (never buffered): open with
 * a name and size, append chunks at the current offset, finish into the uploads folder.
 * Uploads live in memory: a partial file of an earlier run can never be resumed, so
 * `start` removes them. Plain code: no HTTP; the upload routes translate its errors
 * (UploadError codes) into statuses.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirgapError } from '../../kit/errors.js';
import { formatBytes } from '../../kit/text.js';

/**
 * An upload refused or cut. Codes: AG_NOT_FOUND, AG_UPLOAD_NAME, AG_UPLOAD_TOO_LARGE,
 * AG_UPLOADS_OPEN, AG_NO_SPACE, AG_UPLOAD_RANGE, AG_UPLOAD_LENGTH, AG_UPLOAD_OFFSET, AG_UPLOAD_BUSY,
 * AG_UPLOAD_INCOMPLETE, AG_UPLOAD_STALLED.
 */
export class UploadError extends AirgapError {}

/** An upload as clients see it: `offset` bytes of `size` have arrived. */
export interface UploadInfo {
  id: string;
  name: string;
  size: number;
  offset: number;
}

interface Upload extends UploadInfo {
  /** The partial file: `.<id>.partial` in the uploads folder. */
  path: string;
  /** A chunk is being written. */
  busy: boolean;
  /** Last activity, ms since the epoch. */
  touched: number;
}

/** Where a chunk claims to sit: `Content-Range: bytes <start>-<end>/<total>` (RFC 9110 14.4), end inclusive. */
export interface ChunkRange {
  start: number;
  end: number;
  total: number;
}

export interface UploadStoreOptions {
  /** The uploads folder (made 0700). */
  dir: string;
  /** Largest upload accepted, bytes. */
  maxBytes: number;
  /** Free bytes on the volume of `dir`. */
  freeBytes: (dir: string) => Promise<number>;
  /** Open uploads at once (default 4). */
  maxOpen?: number;
  /** Uploads idle this long are dropped with their file, ms (default 24 h). */
  idleMs?: number;
  /** A chunk that sends nothing for this long is cut, so the upload can be resumed, ms (default 60 s). */
  stallMs?: number;
  /** Space kept free beyond the uploads, bytes (default 64 MiB). */
  reserveBytes?: number;
}

/** A .bin name as a browser sends it: a plain file name. */
const UPLOAD_NAME = /^[A-Za-z0-9._+-]{1,200}\.bin$/;

/** Parses a `Content-Range: bytes a-b/n` header; undefined when absent or of another form. */
export function parseContentRange(header: string | undefined): ChunkRange | undefined {
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header ?? '');
  return range ? { start: Number(range[1]), end: Number(range[2]), total: Number(range[3]) } : undefined;
}

/** The open uploads of one uploads folder, in memory; see the module comment. */
export class UploadStore {
  private readonly uploads = new Map<string, Upload>();
  private readonly maxOpen: number;
  private readonly idleMs: number;
  private readonly stallMs: number;
  private readonly reserveBytes: number;
  private sweep: NodeJS.Timeout | undefined;

  constructor(private readonly options: UploadStoreOptions) {
    this.maxOpen = options.maxOpen ?? 4;
    this.idleMs = options.idleMs ?? 24 * 3600 * 1000;
    this.stallMs = options.stallMs ?? 60_000;
    this.reserveBytes = options.reserveBytes ?? 64 * 1024 * 1024;
  }

  /**
   * Makes the uploads folder, removes partial files an earlier run left, and starts
   * expiring idle uploads (every minute; the timer does not keep the process alive).
   * Throws the file system's errors.
   */
  async start(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.options.dir)) if (name.endsWith('.partial')) await rm(join(this.options.dir, name), { force: true });
    clearInterval(this.sweep);
    this.sweep = setInterval(() => void this.expireIdle(), 60_000);
    this.sweep.unref();
  }

  /** Stops expiring; open uploads and their files stay. */
  close(): void {
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  /** How many uploads are open. */
  get openCount(): number {
    return this.uploads.size;
  }

  /** Bytes promised to the open uploads: what they have yet to receive. */
  promisedBytes(): number {
    return [...this.uploads.values()].reduce((n, u) => n + (u.size - u.offset), 0);
  }

  /**
   * Opens an upload of `size` bytes named `name` (a plain `*.bin` file name). Space
   * promised to the open uploads counts as used. Throws UploadError AG_UPLOAD_NAME,
   * AG_UPLOAD_TOO_LARGE (over maxBytes), AG_UPLOADS_OPEN (maxOpen are open), AG_NO_SPACE.
   */
  async open(name: string, size: number): Promise<UploadInfo> {
    const { dir, maxBytes } = this.options;
    if (!UPLOAD_NAME.test(name)) throw new UploadError('AG_UPLOAD_NAME', `'${name.slice(0, 100)}' is not a .bin file name`);
    if (size > maxBytes) throw new UploadError('AG_UPLOAD_TOO_LARGE', `${formatBytes(size)} is more than the ${formatBytes(maxBytes)} allowed`);
    if (this.uploads.size >= this.maxOpen) throw new UploadError('AG_UPLOADS_OPEN', `${this.uploads.size} uploads are open already`, { hint: 'finish or DELETE one of them (GET /api/v1/imports lists the imports)' });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const free = (await this.options.freeBytes(dir)) - this.promisedBytes();
    if (size + this.reserveBytes > free) {
      throw new UploadError('AG_NO_SPACE', `not enough space for the upload: ${formatBytes(size)} needed, ${formatBytes(Math.max(free, 0))} free`, { hint: 'free space on the appliance disk, then upload again' });
    }
    const id = randomBytes(12).toString('hex');
    const upload = { id, name, size, offset: 0, path: join(dir, `.${id}.partial`), busy: false, touched: Date.now() };
    this.uploads.set(id, upload);
    return info(upload);
  }

  /** The upload `id`, which counts as activity. Throws UploadError AG_NOT_FOUND. */
  get(id: string): UploadInfo {
    return info(this.uploadOf(id));
  }

  /**
   * Appends `body` to the upload `id` at its offset. `range` (the chunk's Content-Range)
   * must name the upload's size, a range within it that starts at its offset and, when
   * `length` (the body's declared length) is known, span `length` bytes; a body of
   * unknown length must span the range exactly too. The body may not run past the
   * upload's size. On a failure the bytes that arrived whole are kept, so the client
   * resumes from the offset `get` gives. Returns the upload after the chunk. Throws
   * UploadError AG_NOT_FOUND, AG_UPLOAD_RANGE (the range does not fit the upload),
   * AG_UPLOAD_LENGTH (the body is not as long as its range), AG_UPLOAD_OFFSET,
   * AG_UPLOAD_BUSY (a chunk is being written), AG_UPLOAD_TOO_LARGE (body past the size),
   * AG_UPLOAD_STALLED (nothing for stallMs), or the stream's error.
   */
  async append(id: string, body: Readable, chunk: { range?: ChunkRange | undefined; length?: number | undefined } = {}): Promise<UploadInfo> {
    const upload = this.uploadOf(id);
    const { range, length } = chunk;
    const start = range ? range.start : upload.offset;
    if (range && range.total !== upload.size) throw new UploadError('AG_UPLOAD_RANGE', `Content-Range total ${range.total} is not the upload's size ${upload.size}`);
    if (range && (range.end < range.start || range.end >= range.total)) throw new UploadError('AG_UPLOAD_RANGE', `Content-Range ${range.start}-${range.end}/${range.total} is not a range of the upload`);
    const rangeLength = range ? range.end - range.start + 1 : undefined;
    if (rangeLength !== undefined && Number.isSafeInteger(length) && rangeLength !== length) throw new UploadError('AG_UPLOAD_LENGTH', `Content-Range ${range!.start}-${range!.end} does not match the ${length}-byte body`);
    if (start !== upload.offset) throw new UploadError('AG_UPLOAD_OFFSET', `the upload is at byte ${upload.offset}, not ${start}`, { hint: 'resume from the offset GET /api/v1/uploads/:id gives' });
    if (upload.busy) throw new UploadError('AG_UPLOAD_BUSY', 'another request is writing this upload');
    upload.busy = true;
    try {
      const written = await this.write(upload, body, rangeLength);
      // A body of unknown length (chunked) that ended before its range did: kept, but said.
      if (rangeLength !== undefined && written !== rangeLength) {
        throw new UploadError('AG_UPLOAD_LENGTH', `the body had ${written} bytes, not the ${rangeLength} of its Content-Range`, { hint: 'resume from the offset GET /api/v1/uploads/:id gives' });
      }
    } finally {
      upload.busy = false;
    }
    return info(upload);
  }

  /** Drops the upload `id` and its file. Throws UploadError AG_NOT_FOUND, AG_UPLOAD_BUSY (a chunk is being written). */
  async remove(id: string): Promise<void> {
    const upload = this.uploadOf(id);
    if (upload.busy) throw new UploadError('AG_UPLOAD_BUSY', 'a chunk of this upload is being written');
    await this.drop(upload);
  }

  /** Drops the upload `id` and its file whatever its state (after its only chunk failed); unknown ids are ignored. */
  async discard(id: string): Promise<void> {
    const upload = this.uploads.get(id);
    if (upload) await this.drop(upload);
  }

  /**
   * Closes the complete upload `id`: its file moves to `<dir>/<id>-<name>` and the upload
   * is no longer open. Returns that path. Throws UploadError AG_NOT_FOUND,
   * AG_UPLOAD_INCOMPLETE (the upload stays open).
   */
  async finish(id: string): Promise<string> {
    const upload = this.uploadOf(id);
    if (upload.offset !== upload.size) throw new UploadError('AG_UPLOAD_INCOMPLETE', `the upload has ${upload.offset} of ${upload.size} bytes`, { hint: 'send the rest with PUT /api/v1/uploads/:id' });
    this.uploads.delete(upload.id);
    const file = join(this.options.dir, `${upload.id}-${upload.name}`);
    await rename(upload.path, file);
    return file;
  }

  /** Drops the uploads idle for idleMs at `now` (ms since the epoch), with their files. Returns their ids. */
  async expireIdle(now = Date.now()): Promise<string[]> {
    const expired = [...this.uploads.values()].filter((u) => !u.busy && now - u.touched > this.idleMs);
    await Promise.all(expired.map((u) => this.drop(u)));
    return expired.map((u) => u.id);
  }

  private uploadOf(id: string): Upload {
    const upload = this.uploads.get(id);
    if (!upload) throw new UploadError('AG_NOT_FOUND', `there is no upload ${id}`, { hint: 'start a new one with POST /api/v1/uploads' });
    upload.touched = Date.now();
    return upload;
  }

  private async drop(upload: Upload): Promise<void> {
    this.uploads.delete(upload.id);
    await rm(upload.path, { force: true });
  }

  /**
   * Appends `body` to the upload's file, never past its declared size nor past
   * `rangeLength` bytes (the chunk's Content-Range). Returns the bytes written.
   */
  private async write(upload: Upload, body: Readable, rangeLength: number | undefined): Promise<number> {
    const out = createWriteStream(upload.path, { flags: 'a', mode: 0o600 });
    let written = 0;
    const limit = upload.size - upload.offset;
    let stall: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(stall);
      stall = setTimeout(() => body.destroy(new UploadError('AG_UPLOAD_STALLED', `no data for ${this.stallMs / 1000} s`, { hint: 'resume from the offset GET /api/v1/uploads/:id gives' })), this.stallMs);
    };
    arm();
    await pipeline(
      body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          arm();
          upload.touched = Date.now();
          written += chunk.length;
          if (rangeLength !== undefined && written > rangeLength) throw new UploadError('AG_UPLOAD_LENGTH', `the body runs past its Content-Range of ${rangeLength} bytes`, { hint: 'resume from the offset GET /api/v1/uploads/:id gives' });
          if (written > limit) throw new UploadError('AG_UPLOAD_TOO_LARGE', `the body runs past the upload's size of ${upload.size} bytes`);
          yield chunk;
        }
      },
      out,
    ).finally(() => clearTimeout(stall)).catch(async (err: unknown) => {
      // Keep what arrived whole: the client resumes from the offset GET /uploads/:id gives.
      upload.offset = (await stat(upload.path).catch(() => ({ size: upload.offset }))).size;
      if (upload.offset > upload.size) {
        upload.offset = 0;
        await rm(upload.path, { force: true });
      }
      throw err;
    });
    upload.offset += written;
    return written;
  }
}

function info(u: Upload): UploadInfo {
  return { id: u.id, name: u.name, size: u.size, offset: u.offset };
}
