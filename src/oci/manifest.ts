/**
 * OCI image-spec shapes (descriptor, manifest, index) and the media types this project
 * reads and writes. Docker's schema 2 manifest and manifest list are accepted as their OCI
 * twins (same structure); schema 1 is refused.
 */

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MEDIA_TYPE_OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** Helm charts as OCI artifacts (helm.sh/docs/topics/registries). */
export const MEDIA_TYPE_HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
export const MEDIA_TYPE_HELM_CHART = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

/** Packs: an OCI artifact of this project's own media types. */
export const MEDIA_TYPE_PACK_CONFIG = 'application/vnd.airgap.pack.config.v1+json';
export const MEDIA_TYPE_PACK_CONTENT = 'application/vnd.airgap.pack.content.v1.tar+gzip';

/** Accept header for manifest GETs (OCI distribution-spec, "Pulling manifests"). */
export const MANIFEST_ACCEPT = [MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_DOCKER_MANIFEST].join(', ');

/** Largest manifest or index accepted, in bytes (distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE_OCI_INDEX || mediaType === MEDIA_TYPE_DOCKER_MANIFEST_LIST;
}

export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE_OCI_MANIFEST || mediaType === MEDIA_TYPE_DOCKER_MANIFEST;
}

/** `os/architecture[/variant]`, as skopeo and docker print it. */
export function platformString(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function isDescriptor(value: unknown): value is Descriptor {
  if (typeof value !== 'object' || value === null) return false;
  const d = value as Record<string, unknown>;
  return (
    typeof d.mediaType === 'string' &&
    typeof d.digest === 'string' &&
    /^sha256:[a-f0-9]{64}$/.test(d.digest) &&
    typeof d.size === 'number' &&
    Number.isSafeInteger(d.size) &&
    d.size >= 0
  );
}

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; index: ImageIndex; children: Descriptor[] }
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest; blobs: Descriptor[] };

/**
 * Parses manifest or index bytes. `mediaType` is what the descriptor (or the registry's
 * Content-Type) says; the document's own mediaType wins when present. Returns the
 * children to fetch: manifests of an index, or config and layers of a manifest (only
 * sha256 descriptors are accepted). Throws Error with a sentence on anything else.
 */
export function parseManifest(bytes: Buffer, mediaType: string): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error('is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null) throw new Error('is not a JSON object');
  if (doc.schemaVersion === 1) throw new Error('is a Docker schema 1 manifest, which is deprecated; push the image again with a current client');
  if (doc.schemaVersion !== 2) throw new Error('has no schemaVersion 2');
  const type = typeof doc.mediaType === 'string' ? doc.mediaType : mediaType;
  if (Array.isArray(doc.manifests) || isIndexMediaType(type)) {
    const children = doc.manifests;
    if (!Array.isArray(children) || !children.every(isDescriptor)) throw new Error('is an index with a malformed manifests list');
    return { kind: 'index', mediaType: type || MEDIA_TYPE_OCI_INDEX, index: doc as unknown as ImageIndex, children };
  }
  const config = doc.config;
  const layers = doc.layers ?? [];
  if (!isDescriptor(config) || !Array.isArray(layers) || !layers.every(isDescriptor)) {
    throw new Error('is a manifest with a malformed config or layers');
  }
  return { kind: 'manifest', mediaType: type || MEDIA_TYPE_OCI_MANIFEST, manifest: doc as unknown as ImageManifest, blobs: [config, ...layers] };
}
