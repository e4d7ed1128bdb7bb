/**
 * Import stage "open": the .bin is checked before anything is touched
 * (docs/architecture.md, "One import"; docs/format.md): header, size, tar index and entry rules, TOC digest, signature
 * against the trusted keys in `<state-dir>/trusted-keys/*.pub`, TOC against the index,
 * OCI layout closure. Blob digests are checked by the registry as they land (ADR 0002), file digests in flight.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AirgapError, PayloadError } from '../../kit/errors.js';
import { unsafeOwnership } from '../../kit/fs.js';
import { loadPublicKeys } from '../../format/keys.js';
import { openPayload, readSignedHeader, type OpenedPayload, type SignedHeader } from '../../format/reader.js';

/**
 * Opens `file` for import. Unless `allowUnsigned` (the daemon's explicit flag), the file
 * must be signed by one of the trusted keys: with none installed, every file is refused
 * with a hint that says where keys go. With it, unsigned files and files signed by a key
 * that is not trusted are accepted, while a signature by a trusted key must still verify.
 * The folder and every key in it must be writable only by the daemon's user (or root):
 * otherwise anyone who can plant a key could sign what the box imports.
 * Throws PayloadError (see openPayload), AG_NO_TRUSTED_KEYS, or AG_UNSAFE_PERMISSIONS
 * (the folder or a key is group- or world-writable, or owned by another user).
 */
export async function openForImport(file: string, trustedKeysDir: string, allowUnsigned: boolean): Promise<OpenedPayload> {
  const trustedKeys = await loadTrustedKeys(trustedKeysDir);
  if (!trustedKeys.length && !allowUnsigned) {
    // Open first so that a damaged file says so, then refuse for want of keys.
    const opened = await openPayload(file, {});
    await opened.close();
    throw new PayloadError('AG_NO_TRUSTED_KEYS', `no trusted signing keys are installed, so ${file} cannot be verified`, {
      hint: `copy the airgap-signing.pub of the build side into ${trustedKeysDir}/ and import again`,
    });
  }
  return openPayload(file, { trustedKeys, requireSignature: !allowUnsigned, allowUnverified: allowUnsigned });
}

/**
 * The header and the signed TOC of `file`, checked as `openForImport` checks them, and no
 * more (readSignedHeader): for telling a re-import of a known release cheaply. Undefined
 * when no key is installed (openForImport then says so). Throws as openForImport does.
 */
export async function readHeaderForImport(file: string, trustedKeysDir: string, allowUnsigned: boolean): Promise<SignedHeader | undefined> {
  const trustedKeys = await loadTrustedKeys(trustedKeysDir);
  if (!trustedKeys.length && !allowUnsigned) return undefined;
  return readSignedHeader(file, { trustedKeys, requireSignature: !allowUnsigned, allowUnverified: allowUnsigned });
}

/** The keys in `trustedKeysDir` once the folder and each key are found safe (AG_UNSAFE_PERMISSIONS). */
async function loadTrustedKeys(trustedKeysDir: string) {
  const keyFiles = (await readdir(trustedKeysDir).catch(() => [] as string[])).filter((f) => f.endsWith('.pub'));
  if (keyFiles.length) for (const path of [trustedKeysDir, ...keyFiles.map((f) => join(trustedKeysDir, f))]) await checkTrustPath(path);
  return keyFiles.length ? await loadPublicKeys([trustedKeysDir]) : [];
}

/** Refuses a trusted-keys folder or key file that another user could change (AG_UNSAFE_PERMISSIONS). */
async function checkTrustPath(path: string): Promise<void> {
  const unsafe = await unsafeOwnership(path);
  if (unsafe) {
    throw new AirgapError('AG_UNSAFE_PERMISSIONS', `the trusted keys are not used: ${path} ${unsafe.problem}, so another user could plant or change a key`, {
      hint: `check what is in it, then run '${unsafe.fix}' and import again`,
    });
  }
}
