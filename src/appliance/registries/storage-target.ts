/**
 * A push target for a bundled registry that writes blobs straight into CNCF distribution's
 * filesystem storage (ADR 0008) and keeps manifests and tags on HTTP, where the registry
 * checks each manifest's blobs before it stores it.
 *
 * The layout is the one distribution's `filesystem` driver writes (distribution
 * registry/storage/paths.go), under `<root>/docker/registry/v2`:
 *
 *     blobs/sha256/<hex[0:2]>/<hex>/data                               a blob's bytes
 *     repositories/<name>/_layers/sha256/<hex>/link                    a blob linked into a repository
 *     repositories/<name>/_manifests/revisions/sha256/<hex>/link       a manifest of the repository
 *     repositories/<name>/_manifests/tags/<tag>/current/link           what a tag points at
 *
 * Each link file holds `sha256:<hex>`. A blob is written to a temp file beside the
 * registry's storage (same file system), hashed while it is written and refused unless its
 * digest and size match. `commit()` then makes the blobs written so far durable with one
 * syncfs, renames each into place, writes their links (temp, rename) and syncs again: no
 * fsync per blob, and nothing is in place before its bytes are on disk. Only files are added while
 * the registry runs (distribution's in-memory descriptor cache holds only what exists, so
 * added files never disagree with it); removals happen in garbage collection, with the
 * registry stopped.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { RegistryError } from '../../kit/errors.js';
import { fsyncPath, syncFileSystem } from '../../kit/fs.js';
import { runPool } from '../../kit/pool.js';
import type { BlobSource, PushTarget } from '../../oci/client.js';
import { REPOSITORY, TAG } from '../../oci/reference.js';

const DIGEST = /^sha256:([a-f0-9]{64})$/;

/** The paths of distribution's filesystem storage under `root` (its `rootdirectory`). */
export class StorageLayout {
  readonly base: string;

  constructor(root: string) {
    this.base = join(root, 'docker', 'registry', 'v2');
  }

  /** `blobs/sha256/<hex[0:2]>/<hex>/data`. Throws on a digest that is not sha256:<64 hex>. */
  blobData(digest: string): string {
    const hex = hexOf(digest);
    return join(this.base, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  }

  /** `repositories/<name>/_layers/sha256/<hex>/link` */
  layerLink(repository: string, digest: string): string {
    return join(this.repository(repository), '_layers', 'sha256', hexOf(digest), 'link');
  }

  /** `repositories/<name>/_manifests/revisions/sha256/<hex>/link` */
  revisionLink(repository: string, digest: string): string {
    return join(this.repository(repository), '_manifests', 'revisions', 'sha256', hexOf(digest), 'link');
  }

  /** `repositories/<name>/_manifests/tags/<tag>/current/link` */
  tagLink(repository: string, tag: string): string {
    if (!TAG.test(tag)) throw new RegistryError('AG_BAD_REFERENCE', `'${tag}' is not a valid tag`);
    return join(this.repository(repository), '_manifests', 'tags', tag, 'current', 'link');
  }

  private repository(name: string): string {
    if (!REPOSITORY.test(name) || name.length > 255) throw new RegistryError('AG_BAD_REFERENCE', `'${name}' is not a valid repository name`);
    return join(this.base, 'repositories', ...name.split('/'));
  }
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new RegistryError('AG_BAD_REFERENCE', `'${digest}' is not a sha256 digest`);
  return m[1]!;
}

/** The digest a link file names, or undefined when there is none (or it is not a link). */
async function readLink(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text !== undefined && DIGEST.test(text) ? text : undefined;
}

async function fileSize(path: string): Promise<number | undefined> {
  const s = await stat(path).catch(() => undefined);
  return s?.isFile() ? s.size : undefined;
}

export interface StorageTargetOptions {
  /** The registry's storage `rootdirectory`. */
  root: string;
  /** A folder on the same file system for temp files (emptied when this target first writes; GC empties it too). */
  incoming: string;
  /** The registry's HTTP client: manifests, tags, lists. */
  http: PushTarget;
}

/** A blob written to a temp file and checked, waiting for `commit()`. */
interface PendingBlob {
  digest: string;
  temp: string;
  data: string;
  /** Repositories whose link it gets. */
  repositories: Set<string>;
}

/** File operations at once during a commit. */
const COMMIT_LANES = 8;

/** Bytes per read and write when a blob is copied by position. */
const COPY_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * PushTarget of a bundled registry: blobs by file, manifests and tags over HTTP (their
 * existence checks read the storage). Uploaded and mounted blobs are in place once
 * `commit()` has run; the transfer calls it every 256 MiB or 2 s of finished blobs and at
 * the end of each stage, before any manifest names them. Throws RegistryError as the HTTP client does, with registryCode
 * DIGEST_INVALID when a blob's bytes do not match its digest or size, and the file
 * system's own error (ENOSPC, EIO…) when a write fails.
 */
export class StorageTarget implements PushTarget {
  readonly label: string;
  private readonly layout: StorageLayout;
  /** The incoming folder, emptied and made once per target. */
  private incoming: Promise<unknown> | undefined;
  /** Blobs written since the last commit, by digest. */
  private readonly pending = new Map<string, PendingBlob>();
  /** Blobs of the commit under way, by digest: in place once it ends. */
  private readonly committing = new Map<string, PendingBlob>();
  /** Commits run one after the other. */
  private commits: Promise<unknown> = Promise.resolve();
  /** The first failed commit: this target writes nothing more (its import fails; the next one starts afresh). */
  private broken: { error: Error } | undefined;
  /** Links of blobs already in place, written at the next commit: `repository digest`. */
  private readonly pendingLinks = new Map<string, { repository: string; digest: string }>();
  /** Copy buffers of `COPY_BUFFER_BYTES`, reused: a fresh one per read costs a mapping and its page faults. */
  private readonly buffers: Buffer[] = [];

  constructor(private readonly options: StorageTargetOptions) {
    this.label = options.http.label;
    this.layout = new StorageLayout(options.root);
  }

  /** True when the blob is linked into `repository` and its data is there (committed blobs only). */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    if ((await readLink(this.layout.layerLink(repository, digest))) !== digest) return false;
    return (await fileSize(this.layout.blobData(digest))) !== undefined;
  }

  /** Links a blob the registry holds, or one written since the last commit, into `repository` at the next commit. */
  async mountBlob(repository: string, digest: string, _from: string): Promise<boolean> {
    if (this.broken) throw this.broken.error;
    this.layout.layerLink(repository, digest); // a bad name is refused now
    const written = this.pending.get(digest);
    if (written) {
      written.repositories.add(repository);
      return true;
    }
    if (!this.committing.has(digest) && (await fileSize(this.layout.blobData(digest))) === undefined) return false;
    this.pendingLinks.set(`${repository} ${digest}`, { repository, digest });
    return true;
  }

  async uploadBlob(repository: string, digest: string, size: number, body: () => Readable, signal?: AbortSignal, source?: BlobSource): Promise<void> {
    if (this.broken) throw this.broken.error;
    const data = this.layout.blobData(digest);
    this.layout.layerLink(repository, digest); // a bad name is refused before anything is written
    const written = this.pending.get(digest);
    if (written) {
      written.repositories.add(repository);
      return;
    }
    // In place already, or by the commit under way (another repository's upload, or
    // distribution's): the bytes were checked then.
    if (this.committing.has(digest) || (await fileSize(data)) === size) {
      this.pendingLinks.set(`${repository} ${digest}`, { repository, digest });
      return;
    }
    const temp = source ? await this.copyTemp(digest, size, source, signal) : await this.writeTemp(digest, size, body(), signal);
    const again = this.pending.get(digest); // another lane wrote it meanwhile
    if (again || this.committing.has(digest)) {
      if (again) again.repositories.add(repository);
      else this.pendingLinks.set(`${repository} ${digest}`, { repository, digest });
      await unlink(temp).catch(() => {});
      return;
    }
    this.pending.set(digest, { digest, temp, data, repositories: new Set([repository]) });
  }

  /**
   * Puts every blob written before this call in place, with its links: one syncfs (or an
   * fsync per temp file where `sync --file-system` is missing), renames, links, then a
   * second sync. Commits run one at a time; blobs written while one runs wait for the next.
   * Throws the file system's error; what was not renamed stays in `incoming/` for GC, and
   * a later transfer writes it again.
   */
  commit(signal?: AbortSignal): Promise<void> {
    // A commit that failed left blobs neither pending nor in place: no later commit may
    // succeed and let its caller journal them.
    if (this.broken) return Promise.reject(this.broken.error);
    // Taken now, not when the commit's turn comes: a caller journals what it finished
    // before this call, and all of that must be in place when the promise resolves.
    const blobs = [...this.pending.values()];
    this.pending.clear();
    for (const b of blobs) this.committing.set(b.digest, b);
    const links = [...this.pendingLinks.values()];
    this.pendingLinks.clear();
    const run = this.commits
      .then(() => {
        if (this.broken) throw this.broken.error;
        return this.place(blobs, links, signal);
      })
      .catch((error: unknown) => {
        this.broken ??= { error: error instanceof Error ? error : new Error(String(error)) };
        throw error;
      })
      .finally(() => {
        for (const b of blobs) this.committing.delete(b.digest);
      });
    this.commits = run.catch(() => {});
    return run;
  }

  private async place(blobs: PendingBlob[], links: Array<{ repository: string; digest: string }>, signal?: AbortSignal): Promise<void> {
    for (const b of blobs) for (const repository of b.repositories) links.push({ repository, digest: b.digest });
    if (!blobs.length && !links.length) return;
    if (blobs.length && !(await syncFileSystem(this.options.root, signal))) {
      await runPool(blobs, COMMIT_LANES, signal, (b) => fsyncPath(b.temp));
    }
    const dirs = new Set<string>();
    await runPool(blobs, COMMIT_LANES, signal, async (b) => {
      await mkdir(join(b.data, '..'), { recursive: true });
      await rename(b.temp, b.data);
      dirs.add(join(b.data, '..'));
    });
    await runPool(links, COMMIT_LANES, signal, async (l) => {
      const path = this.layout.layerLink(l.repository, l.digest);
      await this.writeLink(path, l.digest);
      dirs.add(join(path, '..'));
    });
    if (!(await syncFileSystem(this.options.root, signal))) {
      await runPool(links, COMMIT_LANES, signal, (l) => fsyncPath(this.layout.layerLink(l.repository, l.digest)));
      await runPool([...dirs], COMMIT_LANES, signal, (d) => fsyncPath(d));
    }
  }

  async hasManifest(repository: string, digest: string): Promise<boolean> {
    if ((await readLink(this.layout.revisionLink(repository, digest))) !== digest) return false;
    return (await fileSize(this.layout.blobData(digest))) !== undefined;
  }

  /** The digest `repository:tag` points at when that manifest is in the repository, else undefined. */
  async tagDigest(repository: string, tag: string): Promise<string | undefined> {
    const digest = await readLink(this.layout.tagLink(repository, tag));
    return digest && (await this.hasManifest(repository, digest)) ? digest : undefined;
  }

  putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    return this.options.http.putManifest(repository, reference, mediaType, bytes);
  }

  retag(repository: string, tag: string, digest: string): Promise<void> {
    return this.options.http.retag(repository, tag, digest);
  }

  listTags(repository: string): Promise<string[]> {
    return this.options.http.listTags(repository);
  }

  catalog(): Promise<string[]> {
    return this.options.http.catalog();
  }

  close(): void {
    this.options.http.close();
  }

  /** The incoming folder, emptied of what an interrupted import left, once per target. */
  private incomingReady(): Promise<unknown> {
    this.incoming ??= rm(this.options.incoming, { recursive: true, force: true })
      .then(() => mkdir(this.options.incoming, { recursive: true }))
      .catch((err: unknown) => {
        this.incoming = undefined;
        throw err;
      });
    return this.incoming;
  }

  /**
   * Copies `source` into a temp file through a reused buffer, hashing on the way, and
   * checks its size and sha256. Returns the temp file.
   */
  private async copyTemp(digest: string, size: number, source: BlobSource, signal?: AbortSignal): Promise<string> {
    await this.incomingReady();
    const temp = join(this.options.incoming, `${digest.slice(7, 23)}-${randomBytes(6).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    const buffer = this.buffers.pop() ?? Buffer.allocUnsafe(COPY_BUFFER_BYTES);
    let kept = false;
    try {
      const hash = createHash('sha256');
      let position = 0;
      for (;;) {
        signal?.throwIfAborted();
        // One byte past `size` at most: a longer source is refused without reading it all.
        const n = await source.read(buffer, position, Math.min(buffer.length, size + 1 - position));
        if (n === 0) break;
        const chunk = buffer.subarray(0, n);
        hash.update(chunk);
        let written = 0;
        while (written < n) written += (await fh.write(chunk, written, n - written)).bytesWritten;
        position += n;
        if (position > size) break;
      }
      checkBlob(digest, size, position, `sha256:${hash.digest('hex')}`);
      await fh.close();
      kept = true;
      return temp;
    } finally {
      this.buffers.push(buffer);
      if (!kept) {
        await fh.close().catch(() => {});
        await unlink(temp).catch(() => {});
      }
    }
  }

  /** Streams `body` into a temp file and checks its size and sha256. Returns the temp file. */
  private async writeTemp(digest: string, size: number, body: Readable, signal?: AbortSignal): Promise<string> {
    await this.incomingReady();
    const temp = join(this.options.incoming, `${digest.slice(7, 23)}-${randomBytes(6).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    let kept = false;
    try {
      const hash = createHash('sha256');
      let written = 0;
      const onAbort = () => body.destroy(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        signal?.throwIfAborted();
        for await (const chunk of body as AsyncIterable<Buffer>) {
          written += chunk.length;
          if (written > size) break;
          hash.update(chunk);
          let done = 0;
          while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
        }
      } finally {
        signal?.removeEventListener('abort', onAbort);
        body.destroy();
      }
      checkBlob(digest, size, written, `sha256:${hash.digest('hex')}`);
      await fh.close();
      kept = true;
      return temp;
    } finally {
      if (!kept) {
        await fh.close().catch(() => {});
        await unlink(temp).catch(() => {});
      }
    }
  }

  /** Writes a link file holding `digest` through a temp file and a rename: readers see it whole or not at all. */
  private async writeLink(link: string, digest: string): Promise<void> {
    await this.incomingReady();
    const temp = join(this.options.incoming, `link-${randomBytes(8).toString('hex')}`);
    await writeFile(temp, digest, { mode: 0o644, flag: 'wx' });
    try {
      await mkdir(join(link, '..'), { recursive: true });
      await rename(temp, link);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}

/** Refuses bytes whose count or digest differ from the descriptor's, as distribution does (DIGEST_INVALID). */
function checkBlob(digest: string, size: number, written: number, actual: string): void {
  if (written === size && actual === digest) return;
  const what = written > size ? `more than ${size} bytes` : written !== size ? `${written} of ${size} bytes` : `the bytes hash to ${actual}`;
  throw new RegistryError('AG_REGISTRY_PUSH', `blob ${digest}: ${what}: DIGEST_INVALID, digest did not match`, { registryCode: 'DIGEST_INVALID' });
}

