/**
 * Which files an import accepts (src/appliance/import/open.ts): signed by a trusted key;
 * with the daemon's --allow-unsigned also unsigned files and unknown keys, but never a
 * signature that a trusted key does not verify. Keys that another user could have planted
 * are not used at all.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openForImport } from '../../src/appliance/import/open.js';
import { HEADER_SIZE } from '../../src/format/layout.js';
import type { AirgapError } from '../../src/kit/errors.js';
import { craftBin } from '../helpers/craft.js';
import { tempDir } from '../helpers/temp.js';

const dir = await tempDir(t, 'airgap-trust-');
const keysDir = join(dir, 'trusted-keys');
await mkdir(keysDir);
const trusted = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
await writeFile(join(keysDir, 'site.pub'), trusted.publicKey.export({ type: 'spki', format: 'pem' }));
const entries = [{ path: 'files/a.txt', data: Buffer.from('a\n') }];

const signed = join(dir, 'signed.bin');
const unsigned = join(dir, 'unsigned.bin');
const unknown = join(dir, 'unknown.bin');
const forged = join(dir, 'forged.bin');
await craftBin(signed, { key: trusted.privateKey, entries });
await craftBin(unsigned, { entries });
await craftBin(unknown, { key: stranger.privateKey, entries });
// A trusted key's signature of another TOC, carried over: it names the trusted key and does not verify.
const otherSignature = /SIGNATURE="([^"]+)"/.exec((await craftBin(join(dir, 'other.bin'), { key: trusted.privateKey, entries, name: 'other' })).subarray(0, HEADER_SIZE).toString())![1]!;
await craftBin(forged, { key: trusted.privateKey, entries, editHeader: (h) => h.replace(/SIGNATURE="[^"]+"/, `SIGNATURE="${otherSignature}"`) });

async function status(file: string, allowUnsigned: boolean): Promise<string> {
  const opened = await openForImport(file, keysDir, allowUnsigned);
  await opened.close();
  return opened.signature.status;
}

t.test('without --allow-unsigned only a trusted signature passes', async (t) => {
  t.equal(await status(signed, false), 'verified');
  await t.rejects(status(unsigned, false), { code: 'AG_UNSIGNED' });
  await t.rejects(status(unknown, false), { code: 'AG_UNKNOWN_KEY' });
});

t.test('--allow-unsigned lets unsigned and unknown-key files in, with trusted keys installed', async (t) => {
  t.equal(await status(signed, true), 'verified');
  t.equal(await status(unsigned, true), 'unsigned');
  t.equal(await status(unknown, true), 'unchecked');
});

t.test('a file altered after a trusted key signed it is refused even with --allow-unsigned', async (t) => {
  await t.rejects(status(forged, true), { code: 'AG_BAD_SIGNATURE' });
  await t.rejects(status(forged, false), { code: 'AG_BAD_SIGNATURE' });
});

t.test('keys another user could have planted are not used: the folder or a key writable by others, or owned by another user', async (t) => {
  const dir = await tempDir(t, 'airgap-trust-perms-');
  const keys = join(dir, 'trusted-keys');
  await mkdir(keys, { mode: 0o755 });
  await chmod(keys, 0o755);
  const key = join(keys, 'site.pub');
  await writeFile(key, trusted.publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  const open = async () => (await openForImport(signed, keys, false)).close();
  await open();
  const cases: Array<[string, () => Promise<void>, () => Promise<void>, RegExp]> = [
    ['a world-writable folder', () => chmod(keys, 0o777), () => chmod(keys, 0o755), /trusted-keys is world-writable \(mode 0777\)/],
    ['a group-writable folder', () => chmod(keys, 0o775), () => chmod(keys, 0o755), /trusted-keys is group-writable \(mode 0775\)/],
    ['a world-writable key', () => chmod(key, 0o666), () => chmod(key, 0o644), /site\.pub is world-writable \(mode 0666\)/],
    ['a key owned by another user', () => chown(key, 65534, 65534), () => chown(key, 0, 0), /site\.pub is owned by uid 65534/],
    ['a folder owned by another user', () => chown(keys, 65534, 65534), () => chown(keys, 0, 0), /trusted-keys is owned by uid 65534/],
  ];
  for (const [what, spoil, mend, message] of cases) {
    await spoil();
    const err = await openForImport(signed, keys, false).then(
      async (opened) => (await opened.close(), undefined),
      (e: unknown) => e as AirgapError,
    );
    t.equal(err?.code, 'AG_UNSAFE_PERMISSIONS', what);
    t.match(err?.message, message, what);
    t.match(err?.hint, /run '(chmod 0755|chmod 0644|chown 0) .*'/, `${what}: the hint gives the fix`);
    await t.rejects(openForImport(unsigned, keys, true), { code: 'AG_UNSAFE_PERMISSIONS' }, `${what}: refused with --allow-unsigned too`);
    await mend();
    await open();
  }
});
