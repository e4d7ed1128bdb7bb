/**
 * Which files an import accepts (src/appliance/import/open.ts): signed by a trusted key;
 * with the daemon's --allow-unsigned also unsigned files and unknown keys, but never a
 * signature that a trusted key does not verify.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openForImport } from '../../src/appliance/import/open.js';
import { HEADER_SIZE } from '../../src/format/layout.js';
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
