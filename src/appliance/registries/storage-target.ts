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
 * registry's storage (same file system), hashed while it is written, refused unless its
 * digest and size match, fsynced, then renamed into place, as distribution's upload does;
 * its link goes the same way. Only files are added while the registry runs (distribution's
 * in-memory descriptor cache holds only what exists, so added files never disagree with
 * it); removals happen in garbage collection, with the registry stopped.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { RegistryError } from '../../kit/errors.js';
import type { PushTarget } from '../../oci/client.js';
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
  /** A folder on the same file system for temp files (created on demand; emptied by GC). */
  incoming: string;
  /** The registry's HTTP client: manifests, tags, lists. */
  http: PushTarget;
}

/**
 * PushTarget of a bundled registry: blobs by file, manifests and tags over HTTP (their
 * existence checks read the storage). Throws RegistryError as the HTTP client does, with
 * registryCode DIGEST_INVALID when a blob's bytes do not match its digest or size, and the
 * file system's own error (ENOSPC, EIO…) when a write fails.
 */
export class StorageTarget implements PushTarget {
  readonly label: string;
  private readonly layout: StorageLayout;
  /** The incoming folder, made once per target. */
  private incoming: Promise<unknown> | undefined;

  constructor(private readonly options: StorageTargetOptions) {
    this.label = options.http.label;
    this.layout = new StorageLayout(options.root);
  }

  /** True when the blob is linked into `repository` and its data is there. */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    if ((await readLink(this.layout.layerLink(repository, digest))) !== digest) return false;
    return (await fileSize(this.layout.blobData(digest))) !== undefined;
  }

  /** Links a blob the registry holds into `repository` (`from` does not matter: the blob store is shared). */
  async mountBlob(repository: string, digest: string, _from: string): Promise<boolean> {
    const link = this.layout.layerLink(repository, digest);
    if ((await fileSize(this.layout.blobData(digest))) === undefined) return false;
    await this.writeLink(link, digest);
    return true;
  }

  async uploadBlob(repository: string, digest: string, size: number, body: () => Readable, signal?: AbortSignal): Promise<void> {
    const data = this.layout.blobData(digest);
    const link = this.layout.layerLink(repository, digest); // a bad name is refused before anything is written
    // Another repository's upload put it there: the bytes were checked then.
    if ((await fileSize(data)) !== size) await this.writeBlob(data, digest, size, body(), signal);
    await this.writeLink(link, digest);
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

  /** Streams `body` into a temp file, checks size and sha256, fsyncs, renames it to `data`. */
  private async writeBlob(data: string, digest: string, size: number, body: Readable, signal?: AbortSignal): Promise<void> {
    await this.incomingReady();
    const temp = join(this.options.incoming, `${digest.slice(7, 23)}-${randomBytes(6).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    let renamed = false;
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
          await fh.write(chunk);
        }
      } finally {
        signal?.removeEventListener('abort', onAbort);
        body.destroy();
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (written !== size || actual !== digest) {
        throw new RegistryError('AG_REGISTRY_PUSH', `blob ${digest}: ${written > size ? `more than ${size} bytes` : written !== size ? `${written} of ${size} bytes` : `the bytes hash to ${actual}`}: DIGEST_INVALID, digest did not match`, { registryCode: 'DIGEST_INVALID' });
      }
      await fh.sync();
      await fh.close();
      await mkdir(join(data, '..'), { recursive: true });
      await rename(temp, data);
      renamed = true;
    } finally {
      if (!renamed) {
        await fh.close().catch(() => {});
        await unlink(temp).catch(() => {});
      }
    }
  }

  private incomingReady(): Promise<unknown> {
    this.incoming ??= mkdir(this.options.incoming, { recursive: true }).catch((err: unknown) => {
      this.incoming = undefined;
      throw err;
    });
    return this.incoming;
  }

  /**
   * Writes a link file holding `digest` (temp, fsync, rename: readers see it whole or not
   * at all). Callers have found it missing or wrong; writing it again is harmless.
   */
  private async writeLink(link: string, digest: string): Promise<void> {
    await this.incomingReady();
    const temp = join(this.options.incoming, `link-${randomBytes(8).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    try {
      await fh.write(digest);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await mkdir(join(link, '..'), { recursive: true });
      await rename(temp, link);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}
