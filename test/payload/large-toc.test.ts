/**
 * A TOC over the free-form limit (256 KiB) is checked whole, then let go and parsed from a
 * second reading whose digest is checked at its end (docs/format.md, section 9): the
 * reader accepts such a release, and a TOC that changes between the two readings is
 * refused.
 */
import t from 'tap';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBundle } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/temp.js';
import { buildBundle } from '../../src/build/builder.js';
import { openPayload, rereadEntry, verifyPayloadData } from '../../src/format/reader.js';
import { generateSigningKeys, loadPublicKeys } from '../../src/format/keys.js';
import { MAX_FREE_FORM_TOC_BYTES } from '../../src/format/toc.js';
import { sha256Hex } from '../../src/kit/digest.js';

const work = await tempDir(t, 'airgap-large-toc-test-');

t.test('a release whose TOC is over 256 KiB opens, and every file is listed and indexed', async (t) => {
  const count = 1500;
  for (let d = 0; d < 10; d++) await mkdir(join(work, 'files', `d${d}`), { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(join(work, 'files', `d${i % 10}`, `file-${i}.txt`), `file ${i}\n`);
  const spec = await writeBundle(work, { name: 'many', version: '1.0.0', files: [{ source: './files/', target: 'data/' }] });
  const keys = await generateSigningKeys(join(work, 'keys'));
  const { path } = await buildBundle({ specPath: spec, out: work, privateKeyPath: keys.privateKeyPath });
  const opened = await openPayload(path, { trustedKeys: await loadPublicKeys([keys.publicKeyPath]) });
  t.teardown(() => opened.close());
  t.ok(opened.header.tocSize > MAX_FREE_FORM_TOC_BYTES, `the TOC is ${opened.header.tocSize} bytes`);
  t.equal(opened.signature.status, 'verified');
  t.equal(opened.toc.files.length, count);
  t.equal(opened.byPath.get('files/data/d7/file-1497.txt')?.size, 'file 1497\n'.length);
  await verifyPayloadData(opened);
});

t.test('the second reading of a TOC: changed bytes are AG_TOC_DIGEST, a shorter file AG_TRUNCATED', async (t) => {
  const file = join(work, 'entry.bin');
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 117, 'a');
  const entry = { path: 'toc.yaml', size: bytes.length - 100, offset: 100, mode: 0o644, headerOffset: 0 };
  const sha256 = sha256Hex(bytes.subarray(100));
  await writeFile(file, bytes);
  const fh = await open(file, 'r+');
  t.teardown(() => fh.close());
  const drain = async () => {
    let n = 0;
    for await (const chunk of rereadEntry(fh, entry, sha256)) {
      // The file changes under the reader after its first chunk.
      if (n++ === 0 && mutate) await mutate();
      void chunk;
    }
    return n;
  };
  let mutate: (() => Promise<unknown>) | undefined;
  t.equal(await drain(), 4, 'unchanged: four chunks of at most 1 MiB, no error');
  mutate = () => fh.write(Buffer.from('b'), 0, 1, 2 * 1024 * 1024);
  await t.rejects(drain(), { code: 'AG_TOC_DIGEST', message: /changed while it was read/ });
  await fh.write(Buffer.from('a'), 0, 1, 2 * 1024 * 1024);
  mutate = () => fh.truncate(2 * 1024 * 1024);
  await t.rejects(drain(), { code: 'AG_TRUNCATED' });
});
