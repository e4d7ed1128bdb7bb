/**
 * The limits an import is measured against, on the same machine in the same run:
 *
 * - HTTP ingest: the first release's blobs (configs and layers) uploaded into a fresh
 *   appliance registry (the same distribution, TLS and htpasswd as the import's) by a
 *   minimal client in this process: monolithic POST + PUT per blob (distribution-spec
 *   "Pushing a blob monolithically"), keep-alive sockets, one lane per socket, each file
 *   streamed in 1 MiB reads. No HEAD, no mount, no manifest, no bookkeeping: what any
 *   client pushing through the registry's API cannot beat.
 * - Disk copy: the same blob files copied into a fresh folder of the same file system
 *   (copy_file_range through fs.copyFile), each fsynced and renamed into place, the
 *   least an importer that writes the registry's storage must do.
 *
 * Both run `lanes` at once (default 4, the import's lane count) and return seconds.
 */
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join } from 'node:path';

/** Runs `work` over `items` with `lanes` at once. */
async function lanesOver<T>(items: T[], lanes: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/**
 * Uploads every file of `blobs` (paths named by their sha256 hex) to `registry`
 * (`127.0.0.1:PORT`) under repository `raw`. Returns seconds.
 */
export async function httpIngestLimit(args: { registry: string; caPem: string; creds: string; blobs: string[]; lanes?: number }): Promise<number> {
  const lanes = args.lanes ?? 4;
  const agent = new Agent({ keepAlive: true, maxSockets: lanes, ca: args.caPem });
  const auth = `Basic ${Buffer.from(args.creds).toString('base64')}`;
  const send = (method: string, path: string, headers: Record<string, string | number>, body?: string) =>
    new Promise<{ status: number; location?: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: Number(args.registry.split(':')[1]), method, path, agent, headers: { authorization: auth, ...headers } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) }));
      });
      req.on('error', reject);
      if (body === undefined) req.end();
      else createReadStream(body, { highWaterMark: 1024 * 1024 }).pipe(req);
    });
  const started = process.hrtime.bigint();
  await lanesOver(args.blobs, lanes, async (file) => {
    const hex = file.slice(file.lastIndexOf('/') + 1);
    const size = (await stat(file)).size;
    const post = await send('POST', '/v2/raw/blobs/uploads/', { 'content-length': 0 });
    if (post.status !== 202 || !post.location) throw new Error(`POST upload answered ${post.status}`);
    const url = new URL(post.location, `https://${args.registry}`);
    url.searchParams.set('digest', `sha256:${hex}`);
    const put = await send('PUT', `${url.pathname}${url.search}`, { 'content-type': 'application/octet-stream', 'content-length': size }, file);
    if (put.status !== 201) throw new Error(`PUT blob answered ${put.status}`);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  return seconds;
}

/** Copies every file of `blobs` into `dir` (created; removed after), each fsynced then renamed. Returns seconds. */
export async function diskCopyLimit(args: { dir: string; blobs: string[]; lanes?: number }): Promise<number> {
  await rm(args.dir, { recursive: true, force: true });
  await mkdir(args.dir, { recursive: true });
  const started = process.hrtime.bigint();
  await lanesOver(args.blobs, args.lanes ?? 4, async (file) => {
    const name = file.slice(file.lastIndexOf('/') + 1);
    const temp = join(args.dir, `${name}.tmp`);
    await copyFile(file, temp);
    const fh = await open(temp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(temp, join(args.dir, name));
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await rm(args.dir, { recursive: true, force: true });
  return seconds;
}
