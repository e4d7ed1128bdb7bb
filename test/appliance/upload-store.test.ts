/**
 * The upload store on its own, without Fastify, with real files: leftovers removed at
 * start, name, size, open-count and space checks at open, Content-Range checks and the
 * offset on append, a body that runs past the size or stalls, delete, finish, idle expiry.
 */
import t, { type Test } from 'tap';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { UploadStore, parseContentRange, type UploadStoreOptions } from '../../src/appliance/http/upload-store.js';

const MiB = 1024 * 1024;
const work = await mkdtemp(join(tmpdir(), 'airgap-uploads-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

let dirs = 0;
/** A started store in a fresh folder; `free` is what the volume reports. */
async function newStore(t: Test, options: Partial<UploadStoreOptions> & { free?: number } = {}) {
  const dir = join(work, `uploads-${++dirs}`);
  const { free = 10_000 * MiB, ...rest } = options;
  const store = new UploadStore({ dir, maxBytes: 1000 * MiB, freeBytes: async () => free, ...rest });
  await store.start();
  t.teardown(() => store.close());
  return { store, dir };
}

const partials = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.partial'));

t.test('start removes partial files an earlier run left, and nothing else', async (t) => {
  const dir = join(work, 'leftovers');
  const first = new UploadStore({ dir, maxBytes: 100, freeBytes: async () => 1e12 });
  await first.start();
  first.close();
  await writeFile(join(dir, '.0123.partial'), 'half');
  await writeFile(join(dir, 'abc-release.bin'), 'queued for import');
  const store = new UploadStore({ dir, maxBytes: 100, freeBytes: async () => 1e12 });
  await store.start();
  t.teardown(() => store.close());
  t.same((await readdir(dir)).sort(), ['abc-release.bin']);
});

t.test('open: a plain .bin name, at most maxBytes, at most four at once', async (t) => {
  const { store } = await newStore(t, { maxBytes: 1000 });
  await t.rejects(store.open('../../etc/passwd', 10), { code: 'AG_UPLOAD_NAME' });
  await t.rejects(store.open('release.tar', 10), { code: 'AG_UPLOAD_NAME' });
  await t.rejects(store.open('big.bin', 1001), { code: 'AG_UPLOAD_TOO_LARGE' });
  t.equal(store.openCount, 0, 'refusals open nothing');
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await store.open(`x${i}.bin`, 10)).id);
  t.same(store.get(ids[0]!), { id: ids[0], name: 'x0.bin', size: 10, offset: 0 });
  await t.rejects(store.open('x4.bin', 10), { code: 'AG_UPLOADS_OPEN' });
  await store.remove(ids[0]!);
  t.ok(await store.open('x4.bin', 10), 'one closed, one more may open');
});

t.test('space promised to open uploads counts as used (and 64 MiB stay free)', async (t) => {
  const { store } = await newStore(t, { free: 200 * MiB });
  const first = await store.open('a.bin', 100 * MiB);
  t.equal(store.promisedBytes(), 100 * MiB);
  await t.rejects(store.open('b.bin', 100 * MiB), { code: 'AG_NO_SPACE' }, '200 MiB free, 100 promised: another 100 does not fit');
  await t.rejects(store.open('c.bin', 37 * MiB), { code: 'AG_NO_SPACE' }, 'nor 37 (the reserve is 64)');
  t.ok(await store.open('d.bin', 36 * MiB), 'but 36 does');
  await store.remove(first.id);
  t.equal(store.promisedBytes(), 36 * MiB, 'a removed upload gives its promise back');
  t.ok(await store.open('e.bin', 100 * MiB));

  const { store: small } = await newStore(t, { free: 64 * MiB + 100 });
  const up = await small.open('f.bin', 100);
  await small.append(up.id, Readable.from([Buffer.alloc(40)]));
  t.equal(small.promisedBytes(), 60, 'what arrived is no longer promised');
});

t.test('append: chunks at the offset; Content-Range must name the size, the offset and the body length', async (t) => {
  const { store, dir } = await newStore(t);
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 251));
  const { id } = await store.open('release.bin', 300);
  const chunk = (start: number, end: number) => Readable.from([data.subarray(start, end)]);
  t.same(await store.append(id, chunk(0, 100), { range: parseContentRange('bytes 0-99/300'), length: 100 }), { id, name: 'release.bin', size: 300, offset: 100 });
  await t.rejects(store.append(id, chunk(100, 200), { range: parseContentRange('bytes 100-199/301'), length: 100 }), { code: 'AG_UPLOAD_RANGE', message: "Content-Range total 301 is not the upload's size 300" });
  await t.rejects(store.append(id, chunk(100, 200), { range: parseContentRange('bytes 100-101/300'), length: 100 }), { code: 'AG_UPLOAD_LENGTH', message: 'Content-Range 100-101 does not match the 100-byte body' });
  await t.rejects(store.append(id, chunk(200, 300), { range: parseContentRange('bytes 200-299/300'), length: 100 }), { code: 'AG_UPLOAD_OFFSET', message: 'the upload is at byte 100, not 200' });
  t.equal(store.get(id).offset, 100, 'refused chunks change nothing');
  t.equal((await stat(join(dir, `.${id}.partial`))).size, 100);
  // Without a Content-Range a chunk goes at the offset; an unknown length is not checked.
  t.equal((await store.append(id, chunk(100, 200), { length: Number.NaN })).offset, 200);
  t.equal((await store.append(id, chunk(200, 300), { range: parseContentRange('bytes 200-299/300') })).offset, 300);
  const file = await store.finish(id);
  t.ok((await readFile(file)).equals(data), 'the file is the chunks, byte for byte');
  t.equal(parseContentRange('bytes */300'), undefined, 'another form is no range');
});

t.test('append: the range must lie in the upload; a body of unknown length must span it exactly', async (t) => {
  const { store, dir } = await newStore(t);
  const { id } = await store.open('range.bin', 50);
  const body = () => Readable.from([Buffer.alloc(10, 1), Buffer.alloc(20, 2)]);
  await t.rejects(store.append(id, body(), { range: { start: 9, end: 0, total: 50 } }), { code: 'AG_UPLOAD_RANGE' }, 'end before start');
  await t.rejects(store.append(id, body(), { range: { start: 0, end: 50, total: 50 } }), { code: 'AG_UPLOAD_RANGE' }, 'end past the size');
  t.equal(store.get(id).offset, 0, 'refused ranges change nothing');
  await t.rejects(store.append(id, body(), { range: parseContentRange('bytes 0-9/50') }), { code: 'AG_UPLOAD_LENGTH', message: 'the body runs past its Content-Range of 10 bytes' });
  const { offset } = store.get(id);
  t.ok(offset <= 10, `offset ${offset}: nothing past the range`);
  t.equal((await stat(join(dir, `.${id}.partial`)).catch(() => ({ size: 0 }))).size, offset, 'the offset is the bytes on disk');
  await t.rejects(store.append(id, Readable.from([Buffer.alloc(5)]), { range: parseContentRange(`bytes ${offset}-${offset + 9}/50`) }), { code: 'AG_UPLOAD_LENGTH', message: 'the body had 5 bytes, not the 10 of its Content-Range' });
  t.equal(store.get(id).offset, offset + 5, 'a short body is kept; the client resumes from the offset');
});

t.test('append: a body past the size is cut; what arrived whole is kept', async (t) => {
  const { store, dir } = await newStore(t);
  const { id } = await store.open('small.bin', 10);
  await t.rejects(store.append(id, Readable.from([Buffer.alloc(6), Buffer.alloc(6)])), { code: 'AG_UPLOAD_TOO_LARGE' });
  const { offset } = store.get(id);
  t.ok(offset <= 6, `offset ${offset} is within the first part`);
  t.equal((await stat(join(dir, `.${id}.partial`)).catch(() => ({ size: 0 }))).size, offset, 'the offset is the bytes on disk');
  t.equal((await store.append(id, Readable.from([Buffer.alloc(10 - offset)]))).offset, 10, 'the client resumes at the offset');
});

t.test('append: one chunk at a time; a stalled chunk is cut and the upload resumes', async (t) => {
  const { store } = await newStore(t, { stallMs: 100 });
  const { id } = await store.open('slow.bin', 20);
  const body = new PassThrough();
  const writing = store.append(id, body);
  body.write(Buffer.alloc(5));
  await sleep(20);
  await t.rejects(store.append(id, Readable.from([Buffer.alloc(5)])), { code: 'AG_UPLOAD_BUSY' }, 'a second chunk meanwhile is refused');
  await t.rejects(store.remove(id), { code: 'AG_UPLOAD_BUSY' }, 'and so is a delete');
  await t.rejects(writing, { code: 'AG_UPLOAD_STALLED' }, 'nothing for stallMs: cut');
  t.equal(store.get(id).offset, 5, 'the bytes that arrived count');
  t.equal((await store.append(id, Readable.from([Buffer.alloc(15)]), { range: parseContentRange('bytes 5-19/20'), length: 15 })).offset, 20, 'the client resumes at the offset');
});

t.test('remove drops the upload and its file; finish needs every byte', async (t) => {
  const { store, dir } = await newStore(t);
  const a = await store.open('a.bin', 10);
  await store.append(a.id, Readable.from([Buffer.alloc(4)]));
  t.same(await partials(dir), [`.${a.id}.partial`]);
  await t.rejects(store.finish(a.id), { code: 'AG_UPLOAD_INCOMPLETE', message: 'the upload has 4 of 10 bytes' });
  t.equal(store.get(a.id).offset, 4, 'an incomplete upload stays open');
  await store.remove(a.id);
  t.same(await partials(dir), [], 'its file is gone');
  t.throws(() => store.get(a.id), { code: 'AG_NOT_FOUND' });
  await t.rejects(store.remove(a.id), { code: 'AG_NOT_FOUND' });

  const b = await store.open('airgap-v1.0.0.bin', 3);
  await store.append(b.id, Readable.from([Buffer.from('abc')]));
  const file = await store.finish(b.id);
  t.equal(file, join(dir, `${b.id}-airgap-v1.0.0.bin`));
  t.equal(await readFile(file, 'utf8'), 'abc');
  t.same(await partials(dir), []);
  t.equal(store.openCount, 0, 'a finished upload is no longer open');
  await t.rejects(store.finish(b.id), { code: 'AG_NOT_FOUND' });

  const c = await store.open('c.bin', 10);
  await store.append(c.id, Readable.from([Buffer.alloc(2)]));
  await store.discard(c.id);
  t.same(await partials(dir), [], 'discard drops it too');
  t.equal(store.openCount, 0);
});

t.test('idle uploads expire with their file; any use counts as activity', async (t) => {
  const idleMs = 10_000;
  const { store, dir } = await newStore(t, { idleMs });
  const idle = await store.open('idle.bin', 10);
  await store.append(idle.id, Readable.from([Buffer.alloc(3)]));
  const used = await store.open('used.bin', 10);
  const after = Date.now();
  await sleep(30);
  store.get(used.id);
  t.same(await store.expireIdle(after + idleMs - 5000), [], 'nothing is idle yet');
  t.same(await store.expireIdle(after + idleMs + 1), [idle.id], 'the upload not touched since is dropped');
  t.throws(() => store.get(idle.id), { code: 'AG_NOT_FOUND' });
  t.same(await partials(dir), [], 'with its file');
  t.equal(store.get(used.id).id, used.id, 'the one in use stays');

  const body = new PassThrough();
  const writing = store.append(used.id, body);
  t.same(await store.expireIdle(Date.now() + 10 * idleMs), [], 'an upload being written never expires');
  body.end(Buffer.alloc(10));
  await writing;
});
