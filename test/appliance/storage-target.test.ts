/**
 * StorageTarget (src/appliance/registries/storage-target.ts, ADR 0008): blobs written into
 * a running CNCF distribution's filesystem storage are what that registry serves and what
 * its manifest checks find once committed, with its in-memory descriptor cache on; a blob
 * whose bytes do not match its digest or size, a read error, an abort or a bad name leaves
 * nothing in the storage and no temp file.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { RegistryClient } from '../../src/oci/client.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/manifest.js';
import { sha256Digest } from '../../src/kit/digest.js';
import { RegistryError } from '../../src/kit/errors.js';
import { StorageLayout, StorageTarget } from '../../src/appliance/registries/storage-target.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const registry = await startRegistry(t, undefined, { descriptorCache: true });
const incoming = join(await tempDir(t, 'airgap-incoming-'), 'incoming');
const http = new RegistryClient({ registry: registry.host, insecure: true, retries: 0, access: 'push' });
t.teardown(() => http.close());
const target = new StorageTarget({ root: registry.dataDir, incoming, http });
const layout = new StorageLayout(registry.dataDir);

function image(text: string) {
  const config = Buffer.from(`{"architecture":"amd64","os":"linux","comment":"${text}"}`);
  const layer = Buffer.from(`layer bytes of ${text} `.repeat(50_000)); // ~1 MB: several reads
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest, digest: sha256Digest(manifest) };
}

/** A body of `bytes` in 64 KiB chunks, as a .bin read gives it. */
const chunked = (bytes: Buffer) => () => Readable.from((function* () {
  for (let i = 0; i < bytes.length; i += 65536) yield bytes.subarray(i, i + 65536);
})());

const leftovers = async () => (await readdir(incoming).catch(() => [])).length;

t.test('written blobs are served, pass the manifest check and mount into another repository', async (t) => {
  const img = image('one');
  t.equal(await http.hasBlob('team/app', sha256Digest(img.layer)), false, 'the registry has no such blob yet (its cache is asked first)');
  for (const blob of [img.config, img.layer]) await target.uploadBlob('team/app', sha256Digest(blob), blob.length, chunked(blob));
  t.equal(await http.hasBlob('team/app', sha256Digest(img.layer)), false, 'nothing is in place before the commit');
  t.equal(await target.hasBlob('team/app', sha256Digest(img.layer)), false);
  t.equal(await target.mountBlob('team/early', sha256Digest(img.layer), 'team/app'), true, 'a written blob mounts before the commit');
  await target.commit();
  t.equal(await http.hasBlob('team/app', sha256Digest(img.layer)), true, 'the running registry sees the committed blob at once');
  t.equal(await http.hasBlob('team/early', sha256Digest(img.layer)), true, 'and its mount');
  t.equal(await target.hasBlob('team/app', sha256Digest(img.layer)), true);
  const served = Buffer.concat(await (await http.getBlob('team/app', sha256Digest(img.layer))).toArray());
  t.ok(served.equals(img.layer), 'it serves the bytes written');
  t.equal(await http.putManifest('team/app', img.digest, MEDIA_TYPE_OCI_MANIFEST, img.manifest), img.digest, "the registry's manifest check finds both blobs");
  t.equal(await target.hasManifest('team/app', img.digest), true, 'the manifest is read from the storage');
  t.equal(await target.tagDigest('team/app', 'v1'), undefined);
  await http.putManifest('team/app', 'v1', MEDIA_TYPE_OCI_MANIFEST, img.manifest);
  t.equal(await target.tagDigest('team/app', 'v1'), img.digest, 'the tag is read from the storage');
  t.equal(await http.tagDigest('team/app', 'v1'), img.digest, 'as the registry answers it');

  t.equal(await target.hasBlob('other/app', sha256Digest(img.layer)), false, 'another repository has no link yet');
  for (const blob of [img.config, img.layer]) t.equal(await target.mountBlob('other/app', sha256Digest(blob), 'team/app'), true);
  await target.commit();
  t.equal(await http.putManifest('other/app', 'v1', MEDIA_TYPE_OCI_MANIFEST, img.manifest), img.digest, 'the mounted blobs pass the check');
  t.equal(await target.mountBlob('third', sha256Digest(Buffer.from('never written')), 'team/app'), false, 'a blob the storage lacks is not mounted');
  t.equal(await readFile(layout.layerLink('other/app', sha256Digest(img.layer)), 'utf8'), sha256Digest(img.layer), "the link holds the digest, as distribution's does");
  t.equal(await leftovers(), 0, 'no temp file stays');
});

t.test('bytes that do not match, a read error, an abort and a bad name leave nothing', async (t) => {
  const good = Buffer.from('the real bytes '.repeat(10_000));
  const digest = sha256Digest(good);
  const flipped = Buffer.from(good);
  flipped.writeUInt8(flipped.readUInt8(70_000) ^ 1, 70_000);
  const refusals: Array<[string, number, () => Readable]> = [
    ['a flipped byte', good.length, chunked(flipped)],
    ['a short body', good.length, chunked(good.subarray(0, good.length - 1))],
    ['a long body', good.length, chunked(Buffer.concat([good, Buffer.from('x')]))],
    ['a wrong size', good.length - 1, chunked(good)],
  ];
  for (const [what, size, body] of refusals) {
    const err = await target.uploadBlob('team/bad', digest, size, body).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof RegistryError && err.registryCode === 'DIGEST_INVALID', `${what} is refused as DIGEST_INVALID`);
  }
  const failing = () => new Readable({
    read() {
      this.push(good.subarray(0, 1000));
      this.destroy(Object.assign(new Error('read failed'), { code: 'EIO' }));
    },
  });
  await t.rejects(target.uploadBlob('team/bad', digest, good.length, failing), { code: 'EIO' }, 'a read error rejects with that error');
  const abort = new AbortController();
  const stalled = () => new Readable({ read() { abort.abort(new Error('stopped by the test')); } });
  await t.rejects(target.uploadBlob('team/bad', digest, good.length, stalled, abort.signal), { message: 'stopped by the test' }, 'an abort rejects');
  await t.rejects(target.uploadBlob('../escape', digest, good.length, chunked(good)), { code: 'AG_BAD_REFERENCE' });
  await t.rejects(target.uploadBlob('team/bad', 'sha256:../../x', good.length, chunked(good)), { code: 'AG_BAD_REFERENCE' });
  await t.rejects(target.tagDigest('team/bad', '../../x'), { code: 'AG_BAD_REFERENCE' });
  await target.commit();
  await t.rejects(stat(layout.blobData(digest)), { code: 'ENOENT' }, 'no blob data was placed');
  t.equal(await target.hasBlob('team/bad', digest), false);
  t.equal(await http.hasBlob('team/bad', digest), false, 'the registry has nothing');
  t.equal(await leftovers(), 0, 'no temp file stays');
  await t.rejects(stat(join(registry.dataDir, '..', 'escape')), { code: 'ENOENT' });
});

t.test('a blob copied by position (a .bin entry) is checked and committed like a streamed one', async (t) => {
  const good = Buffer.from('positional bytes '.repeat(600_000)); // ~10 MB: several 4 MiB reads
  const digest = sha256Digest(good);
  /** A BlobSource over `bytes`, as format/reader.ts entrySource reads a .bin. */
  const over = (bytes: Buffer, fail?: Error) => ({
    size: bytes.length,
    read: async (buffer: Buffer, position: number, length: number) => {
      if (fail && position > 0) throw fail;
      return bytes.copy(buffer, 0, position, Math.min(bytes.length, position + length));
    },
  });
  const noStream = () => {
    throw new Error('the stream is not used when a source is given');
  };
  const flipped = Buffer.from(good);
  flipped.writeUInt8(flipped.readUInt8(5_000_000) ^ 1, 5_000_000);
  const refused = await target.uploadBlob('team/pos', digest, good.length, noStream, undefined, over(flipped)).then(() => undefined, (e: unknown) => e);
  t.ok(refused instanceof RegistryError && refused.registryCode === 'DIGEST_INVALID', 'a flipped byte is refused');
  const longer = await target.uploadBlob('team/pos', digest, good.length, noStream, undefined, over(Buffer.concat([good, good]))).then(() => undefined, (e: unknown) => e);
  t.ok(longer instanceof RegistryError && longer.registryCode === 'DIGEST_INVALID', 'a longer source is refused');
  const cut = Object.assign(new Error('entry cut short'), { code: 'AG_TRUNCATED' });
  await t.rejects(target.uploadBlob('team/pos', digest, good.length, noStream, undefined, over(good, cut)), { code: 'AG_TRUNCATED' }, "the source's error rejects the upload");
  t.equal(await leftovers(), 0, 'no temp file stays after a refusal');
  await target.uploadBlob('team/pos', digest, good.length, noStream, undefined, over(good));
  await target.commit();
  const served = Buffer.concat(await (await http.getBlob('team/pos', digest)).toArray());
  t.ok(served.equals(good), 'the registry serves the copied bytes');
  t.equal(await leftovers(), 0);
});

t.test('a failed commit breaks the target: no later commit lets its caller journal what it left out', async (t) => {
  const broken = new StorageTarget({ root: registry.dataDir, incoming, http });
  const blob = Buffer.from('left out by a failed commit');
  const digest = sha256Digest(blob);
  await broken.uploadBlob('team/broken', digest, blob.length, chunked(blob));
  const stop = new AbortController();
  stop.abort(new Error('the daemon is stopping'));
  await t.rejects(broken.commit(stop.signal), { message: 'the daemon is stopping' }, 'the commit stops with its signal');
  await t.rejects(broken.commit(), { message: 'the daemon is stopping' }, 'a later commit fails the same way');
  await t.rejects(broken.uploadBlob('team/broken', digest, blob.length, chunked(blob)), { message: 'the daemon is stopping' });
  await t.rejects(broken.mountBlob('team/broken2', digest, 'team/broken'), { message: 'the daemon is stopping' });
  t.equal(await http.hasBlob('team/broken', digest), false, 'the blob is not in place');
  t.equal(await leftovers(), 1, 'its temp file waits in incoming/');
  for (const f of await readdir(incoming)) await rm(join(incoming, f)); // what GC or the next import removes
});

t.test('an empty or foreign link is not taken for the blob, and is replaced', async (t) => {
  const blob = Buffer.from('linked later');
  const digest = sha256Digest(blob);
  await target.uploadBlob('team/links', digest, blob.length, chunked(blob));
  await target.commit();
  const link = layout.layerLink('team/links2', digest);
  await mkdir(join(link, '..'), { recursive: true });
  await writeFile(link, ''); // what a crash can leave of a link written without fsync
  t.equal(await target.hasBlob('team/links2', digest), false, 'an empty link is not the blob');
  t.equal(await target.mountBlob('team/links2', digest, 'team/links'), true);
  await target.commit();
  t.equal(await readFile(link, 'utf8'), digest, 'the link is written whole');
  t.equal(await http.hasBlob('team/links2', digest), true);
});
