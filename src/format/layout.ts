/**
 * The on-disk layout of an airgap .bin: every name inside a payload is built here and
 * nowhere else (docs/format.md).
 *
 *   [ sh header, HEADER_SIZE bytes ][ uncompressed pax tar ]
 *     airgap.yaml                     the TOC, always the first entry
 *     oci/oci-layout, oci/index.json  OCI image layout (image-spec, "Image Layout")
 *     oci/blobs/sha256/<hex>          images, Helm charts and packs share one blob store
 *     files/<target>                  file repository content
 *     runtime/node.gz, runtime/airgap.mjs.gz   format 2 only: what `sh FILE push` runs
 */

/**
 * Versions of the .bin format, written into the header as AIRGAP_FORMAT. Format 2 is
 * format 1 with a runtime: a Node.js and the portable airgap CLI as two signed entries
 * under `runtime/`, their places in the header, and sh actions that run them (push,
 * verify, inspect). A file built without a runtime is format 1, byte for byte.
 */
export const FORMAT_VERSION = '1';
export const FORMAT_WITH_RUNTIME = '2';

/** The runtime entries of format 2: gzip of a Node.js for `platform`, and of the portable CLI (one ES module). */
export const RUNTIME_DIR = 'runtime';
export const RUNTIME_NODE_PATH = `${RUNTIME_DIR}/node.gz`;
export const RUNTIME_CLI_PATH = `${RUNTIME_DIR}/airgap.mjs.gz`;

/** The sh header is padded to exactly this many bytes; the tar payload starts here. */
export const HEADER_SIZE = 16384;

/** Lines that fence the KEY="value" data block of the header. */
export const HEADER_BEGIN = '# --- airgap header: data only, KEY="value" ---';
export const HEADER_END = '# --- end of airgap header ---';

/** The line after which the shell never reads; the padding and payload follow. */
export const PAYLOAD_MARKER = '__AIRGAP_PAYLOAD_BELOW__';

/** The table of contents, first entry of the tar. */
export const TOC_PATH = 'airgap.yaml';

export const OCI_DIR = 'oci';
export const OCI_LAYOUT_PATH = `${OCI_DIR}/oci-layout`;
export const OCI_INDEX_PATH = `${OCI_DIR}/index.json`;
export const OCI_BLOBS_DIR = `${OCI_DIR}/blobs/sha256`;
export const FILES_DIR = 'files';

/** Content of oci/oci-layout (image-spec, "oci-layout file"). */
export const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}';

/** Annotation naming a manifest in oci/index.json: the target `repository:tag`. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** Annotation telling what a manifest in oci/index.json is: image, chart or pack. */
export const ANNOTATION_KIND = 'io.airgap.kind';

/** Repository prefixes in the appliance registries. */
export const CHART_REPOSITORY_PREFIX = 'charts';
export const PACK_REPOSITORY_PREFIX = 'packs';

const SHA256_DIGEST = /^sha256:([a-f0-9]{64})$/;

/** `sha256:<hex>` → `oci/blobs/sha256/<hex>`. Throws on any other algorithm or form. */
export function blobPath(digest: string): string {
  const m = SHA256_DIGEST.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return `${OCI_BLOBS_DIR}/${m[1]}`;
}

/** `oci/blobs/sha256/<hex>` → `sha256:<hex>`, or undefined for any other path. */
export function digestOfBlobPath(path: string): string | undefined {
  const prefix = `${OCI_BLOBS_DIR}/`;
  if (!path.startsWith(prefix)) return undefined;
  const hex = path.slice(prefix.length);
  return /^[a-f0-9]{64}$/.test(hex) ? `sha256:${hex}` : undefined;
}

/** A file repository target (`manifests/a.yaml`) → its entry path (`files/manifests/a.yaml`). */
export function filePath(target: string): string {
  return `${FILES_DIR}/${target}`;
}

/** The default output name for a release: `airgap-v<version>.bin`. */
export function binFileName(version: string): string {
  return `airgap-v${version}.bin`;
}

/** Repository:tag of a chart in the image registry: `charts/<name>:<version>` ('+' becomes '_', as Helm does). */
export function chartTarget(name: string, version: string): string {
  return `${CHART_REPOSITORY_PREFIX}/${name}:${version.replaceAll('+', '_')}`;
}

/** Repository:tag of a pack in the pack registry: `packs/<name>:<version>`. */
export function packTarget(name: string, version: string): string {
  return `${PACK_REPOSITORY_PREFIX}/${name}:${version.replaceAll('+', '_')}`;
}
