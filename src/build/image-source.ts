/**
 * Where images come from: an OCI image layout on disk (`oci:DIR[:REF]`) or a registry
 * (`docker://HOST/REPO:TAG`). Both give manifests (small, in memory, digest-checked) and
 * blobs (streams; the payload writer checks their digest and size as it copies them).
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { BundleError } from '../kit/errors.js';
import { sha256Digest, hexOfDigest } from '../kit/digest.js';
import { MAX_MANIFEST_BYTES, parseManifest, platformString, type Descriptor, MEDIA_TYPE_OCI_MANIFEST } from '../oci/manifest.js';
import { RegistryClient, type Credentials } from '../oci/client.js';
import { parseImageReference } from '../oci/reference.js';
import { ANNOTATION_REF_NAME } from '../format/layout.js';

export interface ImageSource {
  /** The source as written in bundle.yaml, for messages. */
  readonly name: string;
  /** The top manifest or index, with its bytes. */
  resolve(): Promise<{ descriptor: Descriptor; bytes: Buffer }>;
  /** Bytes of a manifest that an index names, verified against its digest. */
  readManifest(descriptor: Descriptor): Promise<Buffer>;
  /** The blob's bytes as a stream. */
  openBlob(descriptor: Descriptor): Promise<Readable>;
}

/** An OCI image layout directory (image-spec, "Image Layout"). */
export class OciLayoutSource implements ImageSource {
  readonly name: string;
  constructor(
    private readonly dir: string,
    private readonly ref: string | undefined,
  ) {
    this.name = `oci:${dir}${ref ? `:${ref}` : ''}`;
  }

  async resolve(): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    let index: { manifests?: Descriptor[] };
    try {
      index = JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
    } catch (cause) {
      throw new BundleError('AG_SOURCE', `${this.name}: ${join(this.dir, 'index.json')} is missing or not JSON; is this an OCI image layout?`, { cause });
    }
    const manifests = index.manifests ?? [];
    const matches = this.ref
      ? manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] === this.ref)
      : manifests;
    if (matches.length !== 1) {
      const refs = manifests.map((d) => d.annotations?.[ANNOTATION_REF_NAME]).filter(Boolean);
      throw new BundleError(
        'AG_SOURCE',
        this.ref
          ? `${this.name}: no single manifest is named '${this.ref}' in the layout`
          : `${this.name}: the layout holds ${matches.length} manifests; name one as oci:DIR:REF`,
        { hint: refs.length ? `names in the layout: ${refs.join(', ')}` : 'the layout has no named manifests' },
      );
    }
    const descriptor = matches[0]!;
    return { descriptor, bytes: await this.readManifest(descriptor) };
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    if (descriptor.size > MAX_MANIFEST_BYTES) throw new BundleError('AG_SOURCE', `${this.name}: manifest ${descriptor.digest} is larger than ${MAX_MANIFEST_BYTES} bytes`);
    const bytes = await readFile(this.blobFile(descriptor)).catch((cause: unknown) => {
      throw new BundleError('AG_SOURCE', `${this.name}: manifest ${descriptor.digest} is missing from the layout`, { cause });
    });
    if (sha256Digest(bytes) !== descriptor.digest) throw new BundleError('AG_DIGEST_MISMATCH', `${this.name}: manifest ${descriptor.digest} does not match its digest`);
    return bytes;
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const file = this.blobFile(descriptor);
    const info = await stat(file).catch((cause: unknown) => {
      throw new BundleError('AG_SOURCE', `${this.name}: blob ${descriptor.digest} is missing from the layout`, { cause });
    });
    if (info.size !== descriptor.size) {
      throw new BundleError('AG_SOURCE', `${this.name}: blob ${descriptor.digest} is ${info.size} bytes, the manifest says ${descriptor.size}`);
    }
    return createReadStream(file, { highWaterMark: 1024 * 1024 });
  }

  private blobFile(descriptor: Descriptor): string {
    return join(this.dir, 'blobs', 'sha256', hexOfDigest(descriptor.digest));
  }
}

/** An image in a registry, pulled over the OCI distribution API. */
export class RegistrySource implements ImageSource {
  readonly name: string;
  private readonly client: RegistryClient;
  private readonly repository: string;
  private readonly reference: string;

  constructor(reference: string, options: { insecure: boolean; credentials?: Credentials; caPem?: string; signal?: AbortSignal }) {
    const ref = parseImageReference(reference);
    this.name = `docker://${reference}`;
    this.repository = ref.repository;
    this.reference = ref.reference;
    this.client = new RegistryClient({ registry: ref.registry, insecure: options.insecure, ...(options.credentials ? { credentials: options.credentials } : {}), ...(options.caPem ? { caPem: options.caPem } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  }

  /** `repository:tag` as the reference names it (Docker Hub's `library/` included). */
  get defaultTarget(): string | undefined {
    return this.reference.startsWith('sha256:') ? undefined : `${this.repository}:${this.reference}`;
  }

  async resolve(): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const m = await this.client.getManifest(this.repository, this.reference);
    const parsed = parseManifest(m.bytes, m.mediaType);
    return { descriptor: { mediaType: parsed.mediaType, digest: m.digest, size: m.bytes.length }, bytes: m.bytes };
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    return (await this.client.getManifest(this.repository, descriptor.digest)).bytes;
  }

  openBlob(descriptor: Descriptor): Promise<Readable> {
    return this.client.getBlob(this.repository, descriptor.digest);
  }
}

/** Everything one image needs: the top descriptor, every manifest's bytes, every blob. */
export interface CollectedImage {
  descriptor: Descriptor;
  /** Manifest and index bytes by digest, the top one included. */
  manifests: Map<string, { bytes: Buffer; mediaType: string }>;
  /** Config and layer descriptors by digest. */
  blobs: Map<string, Descriptor>;
  platforms: string[];
  /** Bytes of every manifest and blob, each counted once. */
  size: number;
}

/**
 * Walks an image from its top manifest or index down to every blob (an index is kept
 * whole: every platform). Throws BundleError naming the source when a manifest is
 * malformed or missing.
 */
export async function collectImage(source: ImageSource): Promise<CollectedImage> {
  const top = await source.resolve();
  const manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  const blobs = new Map<string, Descriptor>();
  const platforms: string[] = [];
  const visit = async (descriptor: Descriptor, bytes: Buffer, depth: number): Promise<void> => {
    if (depth > 4) throw new BundleError('AG_SOURCE', `${source.name}: indexes nest too deep`);
    let parsed;
    try {
      parsed = parseManifest(bytes, descriptor.mediaType);
    } catch (cause) {
      throw new BundleError('AG_SOURCE', `${source.name}: manifest ${descriptor.digest} ${(cause as Error).message}`, { cause });
    }
    manifests.set(descriptor.digest, { bytes, mediaType: parsed.mediaType });
    if (parsed.kind === 'index') {
      for (const child of parsed.children) {
        if (manifests.has(child.digest)) continue;
        await visit(child, await source.readManifest(child), depth + 1);
        if (child.platform) platforms.push(platformString(child.platform));
      }
    } else {
      for (const blob of parsed.blobs) blobs.set(blob.digest, blob);
    }
  };
  const descriptor = { ...top.descriptor, mediaType: top.descriptor.mediaType || MEDIA_TYPE_OCI_MANIFEST };
  await visit(descriptor, top.bytes, 0);
  if (platforms.length === 0) platforms.push(await singlePlatform(source, manifests.get(descriptor.digest)!.bytes));
  let size = 0;
  for (const m of manifests.values()) size += m.bytes.length;
  for (const b of blobs.values()) size += b.size;
  return { descriptor: { mediaType: manifests.get(descriptor.digest)!.mediaType, digest: descriptor.digest, size: top.bytes.length }, manifests, blobs, platforms, size };
}

/** Platform of a single manifest, read from its config (image-spec "Image Configuration"). */
async function singlePlatform(source: ImageSource, manifestBytes: Buffer): Promise<string> {
  const parsed = parseManifest(manifestBytes, '');
  if (parsed.kind !== 'manifest' || parsed.manifest.config.size > MAX_MANIFEST_BYTES) return 'unknown';
  if (!/image\.config|container\.image/.test(parsed.manifest.config.mediaType)) return 'unknown';
  try {
    const stream = await source.openBlob(parsed.manifest.config);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { os?: string; architecture?: string; variant?: string };
    return config.os && config.architecture ? platformString({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }) : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Makes the source for a bundle.yaml `source:` string. `oci:DIR[:REF]` is relative to
 * `baseDir`; `docker://REF` goes to a registry. Throws BundleError AG_SPEC otherwise.
 */
export function imageSourceFor(text: string, baseDir: string, options: { insecureRegistries: string[]; credentials: (registry: string) => Credentials | undefined; caPem?: string; signal?: AbortSignal }): ImageSource & { defaultTarget?: string | undefined } {
  if (text.startsWith('oci:')) {
    const rest = text.slice('oci:'.length);
    const colon = rest.indexOf(':');
    const dir = colon === -1 ? rest : rest.slice(0, colon);
    const ref = colon === -1 ? undefined : rest.slice(colon + 1);
    if (!dir) throw new BundleError('AG_SPEC', `image source '${text}' names no directory`);
    return new OciLayoutSource(resolvePath(baseDir, dir), ref || undefined);
  }
  if (text.startsWith('docker://')) {
    const ref = text.slice('docker://'.length);
    const registry = parseImageReference(ref).registry;
    const insecure = options.insecureRegistries.includes(registry) || options.insecureRegistries.includes('*');
    const credentials = options.credentials(registry);
    return new RegistrySource(ref, { insecure, ...(credentials ? { credentials } : {}), ...(options.caPem ? { caPem: options.caPem } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  }
  throw new BundleError('AG_SPEC', `image source '${text}' has an unknown transport`, { hint: 'use oci:DIR:REF or docker://HOST/REPO:TAG' });
}
