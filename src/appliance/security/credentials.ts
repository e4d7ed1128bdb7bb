/**
 * The appliance's accounts: repository, image registry, pack registry and console. Each
 * gets a fixed user name and a strong random password, made once (on first start) and
 * kept in the database (mode 0600), so `airgap setup` prints the same ones every time.
 */
import { randomInt, scrypt, scryptSync, timingSafeEqual, randomBytes, createHash } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import type { Db } from '../store/db.js';
import { getCredential, insertCredentialOnce } from '../store/credentials.js';

export const ACCOUNTS = {
  repository: 'airgap-repo',
  imageRegistry: 'airgap-images',
  packRegistry: 'airgap-packs',
  console: 'admin',
} as const;
export type AccountName = keyof typeof ACCOUNTS;

export interface Credential {
  username: string;
  password: string;
}

/** Letters and digits only: safe to paste into shells, YAML, URLs and web forms. */
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/** 24 characters of a 57-letter alphabet: about 140 bits. */
const PASSWORD_LENGTH = 24;

/** A random password from a CSPRNG (unbiased: randomInt rejects out-of-range draws). */
export function generatePassword(): string {
  let out = '';
  for (let i = 0; i < PASSWORD_LENGTH; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/** scrypt (N=16384, r=8, p=1) as `scrypt$<salt b64>$<hash b64>`. */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('base64')}$${scryptSync(password, salt, 32).toString('base64')}`;
}

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;

/**
 * Constant-time check of `password` against a {@link hashPassword} string, off the event
 * loop (scrypt runs in libuv's thread pool). False for any other format.
 */
export async function verifyPasswordAsync(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length);
  return timingSafeEqual(actual, expected);
}

/** Constant-time comparison of two secrets of any length (compares their sha256). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Returns every account's credential, making the missing ones (in the database, once:
 * a concurrent maker's row wins). Passwords never change after that.
 */
export function ensureCredentials(db: Db): Record<AccountName, Credential> {
  const out = {} as Record<AccountName, Credential>;
  for (const [name, username] of Object.entries(ACCOUNTS) as Array<[AccountName, string]>) {
    let row = getCredential(db, name);
    if (!row) {
      const password = generatePassword();
      row = insertCredentialOnce(db, { name, username, password, passwordHash: hashPassword(password), createdAt: new Date().toISOString() });
    }
    out[name] = { username: row.username, password: row.password };
  }
  return out;
}

/**
 * bcrypt cost for the registries' htpasswd. distribution checks the hash on every
 * request, so the cost is paid per blob HEAD and PUT; with 140-bit random passwords the
 * hash cost adds nothing against guessing, so it is bcrypt's minimum. The bench measured
 * about 8 ms per small request with cost 6 on a 2-core box, about half of it bcrypt.
 */
export const HTPASSWD_BCRYPT_COST = 4;

/**
 * The htpasswd line for `credential` (bcrypt, as distribution's htpasswd auth requires).
 * Pass the current file's text to keep it when it already holds this user and password
 * at HTPASSWD_BCRYPT_COST (bcrypt salts differ per run, so re-hashing would change the
 * file every time); a hash of another cost (an older box's) is made again.
 */
export function htpasswdFor(credential: Credential, current?: string): string {
  const line = current?.split('\n').find((l) => l.startsWith(`${credential.username}:`));
  const hash = line?.slice(credential.username.length + 1);
  if (hash && bcrypt.getRounds(hash) === HTPASSWD_BCRYPT_COST && bcrypt.compareSync(credential.password, hash)) return `${line}\n`;
  return `${credential.username}:${bcrypt.hashSync(credential.password, HTPASSWD_BCRYPT_COST)}\n`;
}
