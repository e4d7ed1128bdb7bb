/**
 * The one OCI distribution client (src/oci/client.ts) against real registries — Debian's
 * docker-registry with htpasswd (Basic) and with token auth behind a token-service
 * stand-in — and against small loopback servers that play the faults a real registry or
 * its load balancer shows: 5xx and 429 with Retry-After, dropped connections, redirects
 * to blob storage, oversized bodies, silence, private-CA TLS.
 */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { RegistryClient } from '../../src/oci/client.js';
import { MAX_MANIFEST_BYTES, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/manifest.js';
import { sha256Digest } from '../../src/kit/digest.js';
import { PayloadError } from '../../src/kit/errors.js';
import { productVersion } from '../../src/kit/version.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';
import { startTokenRegistry } from '../helpers/token-registry.js';

/** A blob and a manifest that uses it as config and layer, with an annotation of `pad` bytes. */
function sampleImage(pad = 0) {
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layer = Buffer.from(`layer ${Math.random()}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length }],
      ...(pad ? { annotations: { pad: 'x'.repeat(pad) } } : {}),
    }),
  );
  return { config, layer, manifest, digest: sha256Digest(manifest) };
}

async function pushImage(client: RegistryClient, repository: string, tag: string, image: ReturnType<typeof sampleImage>) {
  for (const blob of [image.config, image.layer]) await client.uploadBlob(repository, sha256Digest(blob), blob.length, () => Readable.from([blob]));
  return client.putManifest(repository, tag, MEDIA_TYPE_OCI_MANIFEST, image.manifest);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A loopback HTTP server whose handler the test sets; records every request. */
async function standIn(t: Test, handler: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  const seen: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req);
    handler(req, res, seen.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

t.test('Basic auth against a real registry: push, pull, tags, catalog, and a retag that keeps a 2 MB manifest whole', async (t) => {
  const auth = { username: 'alice', password: 'secret-1' };
  const registry = await startRegistry(t, auth);
  const client = new RegistryClient({ registry: registry.host, insecure: true, credentials: auth, access: 'push' });
  t.teardown(() => client.close());

  const image = sampleImage(2_000_000);
  t.ok(image.manifest.length > 1 << 20, 'the manifest is larger than the old client kept');
  t.equal(await client.hasBlob('team/app', sha256Digest(image.layer)), false);
  t.equal(await pushImage(client, 'team/app', '1.0', image), image.digest, 'the registry stores the manifest under its digest');
  t.equal(await client.hasBlob('team/app', sha256Digest(image.layer)), true);
  t.equal(await client.tagDigest('team/app', '1.0'), image.digest);
  t.equal(await client.mountBlob('other/app', sha256Digest(image.layer), 'team/app'), true, 'mounted across repositories');

  await client.retag('team/app', 'stable', image.digest);
  const back = await client.getManifest('team/app', 'stable');
  t.equal(back.digest, image.digest, 'the retagged manifest is byte for byte the original');
  t.equal(back.bytes.length, image.manifest.length);
  t.same(await readAll(await client.getBlob('team/app', sha256Digest(image.layer))), image.layer);
  t.same((await client.listTags('team/app')).sort(), ['1.0', 'stable']);
  t.same((await client.catalog()).sort(), ['other/app', 'team/app']);
  t.same(await client.listTags('no/such'), []);
  await t.rejects(client.getManifest('team/app', 'nope'), { code: 'AG_NOT_FOUND', status: 404, registryCode: 'MANIFEST_UNKNOWN' });

  const wrong = new RegistryClient({ registry: registry.host, insecure: true, credentials: { ...auth, password: 'wrong' } });
  t.teardown(() => wrong.close());
  await t.rejects(wrong.getManifest('team/app', '1.0'), { code: 'AG_UNAUTHORIZED', status: 401 });
  t.equal(await wrong.ping(), 401, 'ping reports refused credentials as a status');
  t.equal(await client.ping(), 200);
});

t.test('Bearer tokens from a token service in front of a real registry: one token per scope set, refetched when refused', async (t) => {
  const registry = await startTokenRegistry(t);
  const client = new RegistryClient({ registry: registry.host, insecure: true, credentials: { username: registry.username, password: registry.password }, access: 'push' });
  t.teardown(() => client.close());

  const image = sampleImage();
  t.equal(await pushImage(client, 'team/app', '1.0', image), image.digest);
  t.same(registry.tokenRequests, [{ scopes: ['repository:team/app:pull,push'], status: 200, method: 'GET' }], 'one token for the whole push to one repository');
  const parallelBefore = registry.tokenRequests.length;
  t.same(await Promise.all(['a', 'b', 'c', 'd'].map(() => client.hasBlob('team/parallel', sha256Digest(image.layer)))), [false, false, false, false]);
  t.equal(registry.tokenRequests.length - parallelBefore, 1, 'parallel requests for a new scope share one token request');
  t.equal((await client.getManifest('team/app', '1.0')).digest, image.digest);
  t.same(await client.catalog(), ['team/app']);
  t.same(registry.tokenRequests.at(-1), { scopes: ['registry:catalog:*'], status: 200, method: 'GET' }, 'the catalog asks for its own scope');

  // The next token granted for a new scope set is refused by the registry: the client fetches another, once.
  const before = registry.tokenRequests.length;
  registry.grantNothing = 1;
  t.equal(await client.hasBlob('team/other', sha256Digest(image.layer)), false, 'the request succeeds after one refetch');
  t.same(registry.tokenRequests.slice(before).map((r) => r.scopes), [['repository:team/other:pull,push'], ['repository:team/other:pull,push']]);

  const mountedBefore = registry.tokenRequests.length;
  t.equal(await client.mountBlob('team/copy', sha256Digest(image.layer), 'team/app'), true, 'a mount asks for push on the target and pull on the source');
  t.same(registry.tokenRequests.slice(mountedBefore).map((r) => r.scopes), [['repository:team/copy:pull,push', 'repository:team/app:pull']]);

  const stranger = new RegistryClient({ registry: registry.host, insecure: true, credentials: { username: registry.username, password: 'wrong' } });
  t.teardown(() => stranger.close());
  await t.rejects(stranger.getManifest('team/app', '1.0'), { code: 'AG_UNAUTHORIZED', message: /token service .* refused user 'robot' \(401\)/ });
  const anonymous = new RegistryClient({ registry: registry.host, insecure: true });
  t.teardown(() => anonymous.close());
  await t.rejects(anonymous.getManifest('team/app', '1.0'), { code: 'AG_UNAUTHORIZED', hint: /credentials/ });
});

t.test('retries 5xx and 429 (honouring Retry-After), and gives up with the registry status after the last one', async (t) => {
  const flaky = await standIn(t, (req, res, n) => {
    if (n === 1) return json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'service unavailable' }] }, { 'retry-after': '0' });
    if (n === 2) return json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, { 'retry-after': '1' });
    res.writeHead(200, { 'content-type': MEDIA_TYPE_OCI_MANIFEST }).end('{"schemaVersion":2}');
  });
  const client = new RegistryClient({ registry: flaky.url, retryBaseMs: 10 });
  t.teardown(() => client.close());
  const started = Date.now();
  t.equal((await client.getManifest('a/b', 'v1')).bytes.toString(), '{"schemaVersion":2}');
  t.equal(flaky.seen.length, 3, 'two retries, then the answer');
  t.ok(Date.now() - started >= 900, 'waited the second that Retry-After asked for');
  t.equal(flaky.seen[0]!.headers['user-agent'], `airgap/${productVersion()}`, 'the User-Agent names the product and version');

  const down = await standIn(t, (_req, res) => json(res, 502, { errors: [{ code: 'UNKNOWN', message: 'bad gateway', detail: 'upstream reset' }] }));
  const giveUp = new RegistryClient({ registry: down.url, retries: 2, retryBaseMs: 1 });
  t.teardown(() => giveUp.close());
  await t.rejects(giveUp.getManifest('a/b', 'v1'), { code: 'AG_REGISTRY_RESPONSE', status: 502, message: /UNKNOWN: bad gateway \(upstream reset\).*HTTP 502/ });
  t.equal(down.seen.length, 3, 'the first attempt and two retries');
});

t.test('a dropped connection is retried; an upload is retried whole with its body opened again', async (t) => {
  let puts = 0;
  const server = await standIn(t, (req, res, n) => {
    if (n === 1) return req.socket.destroy();
    if (req.method === 'POST') return res.writeHead(202, { location: `/v2/a/b/blobs/uploads/u${n}` }).end();
    if (req.method === 'DELETE') return res.writeHead(204).end();
    if (req.method === 'PUT') {
      puts++;
      req.resume();
      req.on('end', () => (puts === 1 ? json(res, 500, { errors: [{ code: 'UNKNOWN', message: 'storage hiccup' }] }) : res.writeHead(201).end()));
    }
  });
  const client = new RegistryClient({ registry: server.url, retryBaseMs: 1 });
  t.teardown(() => client.close());
  let opened = 0;
  const body = Buffer.from('blob bytes');
  await client.uploadBlob('a/b', sha256Digest(body), body.length, () => (opened++, Readable.from([body])));
  t.equal(opened, 2, 'the body was opened once per PUT');
  t.same(server.seen.map((r) => `${r.method} ${r.url}`), [
    'POST /v2/a/b/blobs/uploads/',
    'POST /v2/a/b/blobs/uploads/',
    `PUT /v2/a/b/blobs/uploads/u2?digest=${encodeURIComponent(sha256Digest(body))}`,
    'DELETE /v2/a/b/blobs/uploads/u2',
    'POST /v2/a/b/blobs/uploads/',
    `PUT /v2/a/b/blobs/uploads/u5?digest=${encodeURIComponent(sha256Digest(body))}`,
  ], 'dropped POST retried; the failed upload cancelled, then retried as POST + PUT');
});

t.test('the registry refusing a digest is not retried and keeps its code', async (t) => {
  const server = await standIn(t, (req, res) => {
    if (req.method === 'POST') return res.writeHead(202, { location: '/v2/a/b/blobs/uploads/x' }).end();
    if (req.method === 'DELETE') return res.writeHead(204).end();
    req.resume();
    req.on('end', () => json(res, 400, { errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] }));
  });
  const client = new RegistryClient({ registry: server.url, retryBaseMs: 1 });
  t.teardown(() => client.close());
  await t.rejects(client.uploadBlob('a/b', sha256Digest('x'), 1, () => Readable.from([Buffer.from('y')])), { code: 'AG_REGISTRY_PUSH', registryCode: 'DIGEST_INVALID', status: 400 });
  t.same(server.seen.map((r) => r.method), ['POST', 'PUT', 'DELETE'], 'no retry; the refused upload is cancelled');
});

t.test('an error of the upload body (a damaged source) fails the upload at once and is not retried', async (t) => {
  const server = await standIn(t, (req, res) => {
    if (req.method === 'POST') return res.writeHead(202, { location: '/v2/a/b/blobs/uploads/x' }).end();
    req.resume();
  });
  const client = new RegistryClient({ registry: server.url, retryBaseMs: 1 });
  t.teardown(() => client.close());
  const damaged = () =>
    new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new PayloadError('AG_TRUNCATED', 'the file ends early'));
      },
    });
  await t.rejects(client.uploadBlob('a/b', sha256Digest('x'), 5000, damaged), { code: 'AG_TRUNCATED' });
  t.equal(server.seen.filter((r) => r.method === 'POST').length, 1, 'one attempt only: no new upload was started');
});

t.test('redirects on blob GETs: followed, and Authorization never leaves the registry origin', async (t) => {
  const storage = await standIn(t, (_req, res) => res.writeHead(200).end('the blob'));
  const registry = await standIn(t, (req, res) => {
    if (!req.headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(307, { location: `${storage.url}/bucket/blob?sig=1` }).end();
  });
  const client = new RegistryClient({ registry: registry.url, credentials: { username: 'u', password: 'p' } });
  t.teardown(() => client.close());
  t.equal((await readAll(await client.getBlob('a/b', sha256Digest('the blob')))).toString(), 'the blob');
  t.match(registry.seen.at(-1)!.headers.authorization, /^Basic /, 'the registry got the credentials');
  t.equal(storage.seen.length, 1);
  t.equal(storage.seen[0]!.headers.authorization, undefined, 'the storage origin did not');
  t.equal(storage.seen[0]!.url, '/bucket/blob?sig=1');
});

t.test('a manifest past the limit is refused, never cut; a silent registry times out', async (t) => {
  const big = await standIn(t, (_req, res) => res.writeHead(200, { 'content-type': MEDIA_TYPE_OCI_MANIFEST }).end(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20)));
  const client = new RegistryClient({ registry: big.url, retries: 0 });
  t.teardown(() => client.close());
  await t.rejects(client.getManifest('a/b', 'v1'), { code: 'AG_REGISTRY_RESPONSE', message: /larger than 4194304 bytes; refused/ });

  const silent = await standIn(t, () => undefined);
  const waiting = new RegistryClient({ registry: silent.url, retries: 1, retryBaseMs: 1, timeoutMs: 200 });
  t.teardown(() => waiting.close());
  await t.rejects(waiting.getManifest('a/b', 'v1'), { code: 'AG_REGISTRY_UNREACHABLE', transient: true, message: /no bytes moved for 0.2 s/ });
  t.equal(silent.seen.length, 2, 'a timeout is retried like a network error');
});

t.test('a private CA: trusted when given, refused when not', async (t) => {
  const dir = await tempDir(t, 'airgap-client-ca-');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=test CA', '-days', '2', '-keyout', 'ca.key', '-out', 'ca.crt');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=registry', '-keyout', 'server.key', '-out', 'server.csr');
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
  const server = createHttpsServer({ key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.crt')) }, (_req, res) => res.writeHead(200).end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const trusting = new RegistryClient({ registry: url, caPem: await readFile(join(dir, 'ca.crt'), 'utf8') });
  t.teardown(() => trusting.close());
  t.equal(await trusting.ping(), 200);
  const strict = new RegistryClient({ registry: url, retries: 0 });
  t.teardown(() => strict.close());
  await t.rejects(strict.ping(), { code: 'AG_REGISTRY_UNREACHABLE', transient: false, hint: /--ca-file/ });
});
