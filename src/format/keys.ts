/**
 * Signing keys: ed25519 (RFC 8032) in PEM, PKCS#8 for the private key, SPKI for the public
 * key. The signature covers the exact bytes of the TOC; the key id is the first 16 hex
 * characters of the sha256 of the public key's SPKI DER.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { sha256Hex } from '../kit/digest.js';
import { PayloadError } from '../kit/errors.js';
import { writeFileAtomic } from '../kit/fs.js';

export const PRIVATE_KEY_FILE = 'airgap-signing.key';
export const PUBLIC_KEY_FILE = 'airgap-signing.pub';

export interface PublicKeyInfo {
  keyId: string;
  key: KeyObject;
  /** Where the key was read from, for messages. */
  source: string;
}

/** Key id of a public key: first 16 hex chars of sha256(SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

/**
 * Writes a new ed25519 key pair into `dir`: airgap-signing.key (mode 0600) and
 * airgap-signing.pub (0644). Refuses to overwrite an existing private key.
 * Returns the two paths and the key id.
 */
export async function generateSigningKeys(dir: string): Promise<{ privateKeyPath: string; publicKeyPath: string; keyId: string }> {
  const privateKeyPath = join(dir, PRIVATE_KEY_FILE);
  const publicKeyPath = join(dir, PUBLIC_KEY_FILE);
  if (await stat(privateKeyPath).then(() => true, () => false)) {
    throw new PayloadError('AG_KEY_EXISTS', `${privateKeyPath} already exists`, {
      hint: 'keep the existing key (sites trust its public half), or move it away first to make a new one',
    });
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await writeFileAtomic(privateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  await writeFileAtomic(publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }), 0o644);
  return { privateKeyPath, publicKeyPath, keyId: keyIdOf(publicKey) };
}

/** Reads an ed25519 private key (PEM PKCS#8). Throws PayloadError AG_BAD_KEY otherwise. */
export async function loadPrivateKey(path: string): Promise<{ key: KeyObject; keyId: string }> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (cause) {
    throw new PayloadError('AG_BAD_KEY', `cannot read the signing key ${path}`, { cause, hint: 'make one with `airgap keygen --out DIR`' });
  }
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`key type is ${key.asymmetricKeyType}`);
    return { key, keyId: keyIdOf(createPublicKey(key)) };
  } catch (cause) {
    throw new PayloadError('AG_BAD_KEY', `${path} is not an ed25519 private key in PEM`, { cause, hint: 'make one with `airgap keygen --out DIR`' });
  }
}

/**
 * Reads public keys: each path is a PEM file, or a directory whose `*.pub` files are read.
 * Throws PayloadError AG_BAD_KEY for a file that is not an ed25519 public key.
 */
export async function loadPublicKeys(paths: string[]): Promise<PublicKeyInfo[]> {
  const keys: PublicKeyInfo[] = [];
  for (const path of paths) {
    let files = [path];
    const info = await stat(path).catch((cause) => {
      throw new PayloadError('AG_BAD_KEY', `cannot read the public key ${path}`, { cause });
    });
    if (info.isDirectory()) files = (await readdir(path)).filter((f) => f.endsWith('.pub')).sort().map((f) => join(path, f));
    for (const file of files) {
      try {
        const key = createPublicKey(await readFile(file));
        if (key.asymmetricKeyType !== 'ed25519') throw new Error(`key type is ${key.asymmetricKeyType}`);
        keys.push({ key, keyId: keyIdOf(key), source: basename(file) });
      } catch (cause) {
        throw new PayloadError('AG_BAD_KEY', `${file} is not an ed25519 public key in PEM`, { cause });
      }
    }
  }
  return keys;
}

/** ed25519 signature of `data`, base64. */
export function signBytes(data: Buffer, privateKey: KeyObject): string {
  return sign(null, data, privateKey).toString('base64');
}

/** True when `signatureBase64` is a valid ed25519 signature of `data` by `publicKey`. */
export function verifyBytes(data: Buffer, signatureBase64: string, publicKey: KeyObject): boolean {
  const signature = Buffer.from(signatureBase64, 'base64');
  if (signature.length !== 64) return false;
  return verify(null, data, publicKey, signature);
}
