/** sha256 helpers (OCI image-spec, "Digests": algorithm sha256, lower-case hex). */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

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

/** A pass-through stream that hashes (sha256) and counts the bytes going through it. */
export interface Sha256Tap extends Transform {
  /** Lower-case hex sha256 of what went through; call once, after the stream ended. */
  digest(): string;
  /** Bytes that went through so far. */
  bytes(): number;
}

/** A Sha256Tap; `onChunk` is told the size of each chunk as it passes (progress). */
export function sha256Tap(onChunk?: (bytes: number) => void): Sha256Tap {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      onChunk?.(chunk.length);
      cb(null, chunk);
    },
  }) as Sha256Tap;
  tap.digest = () => hash.digest('hex');
  tap.bytes = () => bytes;
  return tap;
}
