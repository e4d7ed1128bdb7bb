/**
 * docs/format.md, section 11 ("Verifying by hand") run as written, taken from the doc
 * itself: with coreutils, tar and openssl and the admin's own copy of the public key, a
 * genuine file verifies; a file signed by another key, or with one byte of a blob
 * flipped, does not.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { openPayload } from '../../src/format/reader.js';
import { makeFiles, writeBundle, writeSyntheticLayout } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-by-hand-');
const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'format.md'), 'utf8');
const section = doc.slice(doc.indexOf('## 11. Verifying by hand'), doc.indexOf('## 12.'));
const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
const script = block?.replace(/^f=airgap-v1\.0\.0\.bin; pub=airgap-signing\.pub;/m, 'f="$BIN"; pub="$PUB";');

const keys = await generateSigningKeys(join(work, 'keys'));
const other = await generateSigningKeys(join(work, 'other'));
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'app', layers: [Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2)] }]);
await makeFiles(join(work, 'manifests'));
await writeBundle(work, { name: 'demo', version: '1.0.0', images: [{ source: 'oci:./images:app', target: 'apps/app:1.0' }], files: [{ source: './manifests/', target: 'manifests/' }] });
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: join(work, 'out'), privateKeyPath: keys.privateKeyPath })).path;

/** Runs the doc's block on `file` with `pub`; its temp folder goes in this test's own. */
const byHand = (file: string, pub: string) => execa('bash', ['-c', script!], { reject: false, env: { BIN: file, PUB: pub, TMPDIR: work, LC_ALL: 'C' } });

t.test('the block is in the doc, names the file and key on its first line, and cleans up', async (t) => {
  t.ok(block, 'docs/format.md section 11 has a sh block');
  t.not(script, block, 'its first line sets f= and pub= as this test expects');
  t.match(block!, /trap 'rm -rf "\$dir"' EXIT/);
});

t.test('a genuine file verifies; another key or a flipped byte does not', async (t) => {
  const good = await byHand(bin, keys.publicKeyPath);
  t.equal(good.exitCode, 0, good.stderr);
  t.match(good.stdout, /verified\s*$/);

  const wrongKey = await byHand(bin, other.publicKeyPath);
  t.not(wrongKey.exitCode, 0, 'the signature does not verify with another key');
  t.notMatch(wrongKey.stdout, /verified\s*$/);

  const opened = await openPayload(bin);
  const blob = [...opened.byPath.values()].filter((e) => e.path.startsWith('oci/blobs/')).sort((a, b) => b.size - a.size)[0]!;
  await opened.close();
  const bytes = await readFile(bin);
  bytes[blob.offset + 10]! ^= 0x01;
  const flipped = join(work, 'flipped.bin');
  await writeFile(flipped, bytes);
  const damaged = await byHand(flipped, keys.publicKeyPath);
  t.not(damaged.exitCode, 0, 'sha256sum -c catches the flipped byte');
  t.notMatch(damaged.stdout, /verified\s*$/);
});
