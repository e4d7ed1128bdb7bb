/** sha256 helpers (OCI image-spec, "Digests": algorithm sha256, lower-case hex). */
import { createHash } from 'node:crypto';

export const SHA256_HEX = /^[a-f0-9]{64}$/;
export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Lower-case hex sha256 of the bytes. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `sha256:<hex>` digest of the bytes. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/** `sha256:<hex>` → `<hex>`. Throws on any other form. */
export function hexOfDigest(digest: string): string {
  if (!SHA256_DIGEST.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return digest.slice('sha256:'.length);
}
