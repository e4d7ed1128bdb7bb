/**
 * The console API through `app.inject` on the real HTTPS app (real TLS material, real
 * scrypt hash, real upload files): authentication, rate limiting (parallel attempts too),
 * CSRF and cross-site refusal (configured origins), connection details, resumable uploads
 * and their Content-Range checks, server-sent events, OpenAPI, security headers, and the
 * repository's dot folders.
 */
import t from 'tap';
import { mkdir, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { publicAppFor } from '../helpers/console-app.js';
import type { ConsoleOperations } from '../../src/appliance/http/api.js';
import { hashPassword } from '../../src/appliance/security/credentials.js';
import { ensurePki } from '../../src/appliance/security/pki.js';
import { stateLayout } from '../../src/appliance/config/state-layout.js';
import type { ImportRow } from '../../src/appliance/store/imports.js';
import { tempDir } from '../helpers/temp.js';

/** The error body every refusal carries. */
interface ApiError { code: string; message: string }
/** An upload as POST/PUT/GET /api/v1/uploads describe it. */
interface Upload { id: string; name: string; size: number; offset: number }
/** GET /api/v1/connection: passwords are null unless revealed. */
interface Connection { imageRegistry: { url: string; username: string; password: string | null } }

const work = await tempDir(t, 'airgap-api-');
const layout = stateLayout(work);
const pki = await ensurePki(layout, ['127.0.0.1']);
const PASSWORD = 'Console-Pa55word';
const events: Array<{ actor: string; kind: string }> = [];
const queued: Array<{ file: string; actor: string; allowDowngrade: boolean; content: Buffer }> = [];
const row = (id: number, state: ImportRow['state']): ImportRow => ({
  id, file: '/x.bin', source: 'upload', actor: 'admin', options: {}, state, stage: null, name: 'demo', version: '1.0.0', payloadSha256: null,
  createdAt: 'now', startedAt: null, finishedAt: null, resumed: 0, error: null, result: null,
});
const cred = (url: string, username: string) => ({ url, username, password: `${username}-secret` });
const ops: ConsoleOperations = {
  consoleAccount: () => ({ username: 'admin', passwordHash: hashPassword(PASSWORD) }),
  consoleOrigins: () => ['https://10.0.0.5', 'https://localhost'],
  status: async () => ({ healthy: true }) as never,
  connectionDetails: () => ({
    repository: cred('https://10.0.0.5', 'airgap-repo'),
    imageRegistry: cred('https://10.0.0.5:5000', 'airgap-images'),
    packRegistry: cred('https://10.0.0.5:8000', 'airgap-packs'),
    console: cred('https://10.0.0.5', 'admin'),
    helmRepository: { ...cred('https://10.0.0.5/charts', 'airgap-repo'), addCommand: 'helm repo add airgap https://10.0.0.5/charts --username airgap-repo --password-stdin --ca-file airgap-ca.crt' },
    caCertificateBase64: Buffer.from(pki.tls.caPem).toString('base64'),
  }),
  caPem: () => pki.tls.caPem,
  releases: () => ({ current: '1.0.0', items: [], next: null, total: 0 }),
  release: () => undefined,
  artifacts: ({ kind }) => ({ items: [{ releaseVersion: '1.0.0', kind, target: `${kind}/x:1`, digest: 'sha256:00', size: 1, mediaType: null, platforms: null }], next: null, total: 1 }),
  listImports: () => [row(1, 'imported')],
  getImport: (id) => (id === 1 ? row(1, 'imported') : undefined),
  followImport: (id, onUpdate, onDone) => {
    onUpdate({ importId: id, state: 'running', stage: 'images', name: 'demo', version: '1.0.0', queuePosition: 0, bytesDone: 5, bytesTotal: 10, itemsDone: 1, itemsTotal: 2 });
    setImmediate(() => onDone(row(id, 'imported')));
    return () => {};
  },
  queueUpload: (file, actor, allowDowngrade) => {
    queued.push({ file, actor, allowDowngrade, content: Buffer.alloc(0) });
    return { import: row(7, 'queued'), queuePosition: 0 };
  },
  events: () => [],
  recordEvent: (actor, kind) => void events.push({ actor, kind }),
  uploadsDir: layout.uploadsDir,
  freeBytes: async (dir) => {
    const fs = await statfs(dir);
    return fs.bavail * fs.bsize;
  },
  maxUploadBytes: 1_000_000,
  deleteRelease: async (version, actor) => ({ version, actor }),
  collectGarbage: async (actor) => ({ actor, bytesReclaimed: 0 }),
  diff: (from, to) => ({ from, to }),
  backupTo: async (sink) => void sink.end('backup'),
  nodeConfigFiles: () => [{ path: 'README.md', content: 'x', mode: 0o644 }],
};

async function newApp() {
  const app = await publicAppFor(layout, pki.tls, ops);
  t.teardown(() => app.close());
  return app;
}

const app = await newApp();
const HOST = { host: '10.0.0.5' };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

async function login(client = '10.1.1.1') {
  const r = await app.inject({ method: 'POST', url: '/api/v1/session', headers: HOST, payload: { username: 'admin', password: PASSWORD }, remoteAddress: client });
  const cookie = String(r.headers['set-cookie']).split(';')[0]!;
  return { r, cookie, csrf: r.json<{ csrfToken: string }>().csrfToken };
}

t.test('anonymous requests get 401; the console login sets a secure, httpOnly, SameSite=Strict cookie', async (t) => {
  for (const url of ['/api/v1/status', '/api/v1/releases', '/api/v1/connection', '/api/v1/events', '/api/v1/imports']) {
    const r = await app.inject({ url, headers: HOST });
    t.equal(r.statusCode, 401, url);
  }
  const { r } = await login();
  t.equal(r.statusCode, 200);
  const cookie = String(r.headers['set-cookie']);
  t.match(cookie, /^airgap_session=[A-Za-z0-9_-]{40,};/);
  t.match(cookie, /HttpOnly/);
  t.match(cookie, /Secure/);
  t.match(cookie, /SameSite=Strict/);
  t.ok(events.some((e) => e.kind === 'console.login'), 'recorded');
});

t.test('with the session: reads work; changes need the CSRF token; logout ends it', async (t) => {
  const { cookie, csrf } = await login();
  t.equal((await app.inject({ url: '/api/v1/status', headers: { ...HOST, cookie } })).statusCode, 200);
  const me = await app.inject({ url: '/api/v1/session', headers: { ...HOST, cookie } });
  t.same(me.json(), { username: 'admin', csrfToken: csrf });
  const noToken = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, cookie }, payload: { name: 'a.bin', size: 10 } });
  t.equal(noToken.statusCode, 403);
  t.equal(noToken.json<ApiError>().code, 'AG_CSRF');
  const wrongToken = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, cookie, 'x-csrf-token': `${csrf}x` }, payload: { name: 'a.bin', size: 10 } });
  t.equal(wrongToken.statusCode, 403);
  const ok = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, cookie, 'x-csrf-token': csrf }, payload: { name: 'a.bin', size: 10 } });
  t.equal(ok.statusCode, 201);
  const putNoToken = await app.inject({ method: 'PUT', url: `/api/v1/uploads/${ok.json<Upload>().id}`, headers: { ...HOST, cookie, 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(10) });
  t.equal(putNoToken.statusCode, 403, 'PUT needs the token too');
  const del = await app.inject({ method: 'DELETE', url: `/api/v1/uploads/${ok.json<Upload>().id}`, headers: { ...HOST, cookie, 'x-csrf-token': csrf } });
  t.equal(del.statusCode, 204, 'an upload can be dropped');
  const out = await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { ...HOST, cookie, 'x-csrf-token': csrf } });
  t.equal(out.statusCode, 204);
  t.equal((await app.inject({ url: '/api/v1/status', headers: { ...HOST, cookie } })).statusCode, 401, 'the session is gone');
});

t.test('wrong passwords: 401, recorded, and 429 after five tries in a minute from one client', async (t) => {
  const client = '10.9.9.9';
  for (let i = 0; i < 5; i++) {
    const r = await app.inject({ method: 'POST', url: '/api/v1/session', headers: HOST, payload: { username: 'admin', password: `wrong${i}` }, remoteAddress: client });
    t.equal(r.statusCode, 401);
  }
  const limited = await app.inject({ method: 'POST', url: '/api/v1/session', headers: HOST, payload: { username: 'admin', password: PASSWORD }, remoteAddress: client });
  t.equal(limited.statusCode, 429, 'even the right password waits');
  t.ok(Number(limited.headers['retry-after']) > 0);
  t.equal(events.filter((e) => e.kind === 'console.login_failed' && e.actor === client).length, 5);
  const other = await login('10.2.2.2');
  t.equal(other.r.statusCode, 200, 'other clients are not locked out');
});

t.test('scripts use basic auth; a cross-site request is refused whatever it carries', async (t) => {
  const r = await app.inject({ url: '/api/v1/releases', headers: { ...HOST, ...basic('admin', PASSWORD) } });
  t.equal(r.statusCode, 200);
  t.equal((await app.inject({ url: '/api/v1/releases', headers: { ...HOST, ...basic('admin', 'nope') }, remoteAddress: '10.3.3.3' })).statusCode, 401);
  const { cookie, csrf } = await login();
  const cross = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' }, payload: { name: 'a.bin', size: 10 } });
  t.equal(cross.statusCode, 403);
  t.equal(cross.json<ApiError>().code, 'AG_CROSS_SITE');
  const crossBasic = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, ...basic('admin', PASSWORD), origin: 'http://10.0.0.5:8080' }, payload: { name: 'a.bin', size: 10 } });
  t.equal(crossBasic.statusCode, 403, 'another port is another site');
  const same = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { ...HOST, ...basic('admin', PASSWORD), origin: 'https://10.0.0.5' }, payload: { name: 'a.bin', size: 10 } });
  t.equal(same.statusCode, 201);
  await app.inject({ method: 'DELETE', url: `/api/v1/uploads/${same.json<Upload>().id}`, headers: { ...HOST, ...basic('admin', PASSWORD) } });
});

t.test('connection details: passwords only on explicit request, which is recorded', async (t) => {
  const auth = { ...HOST, ...basic('admin', PASSWORD) };
  const hidden = (await app.inject({ url: '/api/v1/connection', headers: auth })).json<Connection>();
  t.equal(hidden.imageRegistry.url, 'https://10.0.0.5:5000');
  t.equal(hidden.imageRegistry.username, 'airgap-images');
  t.equal(hidden.imageRegistry.password, null);
  t.notMatch(JSON.stringify(hidden), /-secret/);
  const shown = (await app.inject({ url: '/api/v1/connection?reveal=true', headers: auth })).json<Connection>();
  t.equal(shown.imageRegistry.password, 'airgap-images-secret');
  t.ok(events.some((e) => e.kind === 'console.passwords_revealed'));
  const ca = await app.inject({ url: '/api/v1/ca.crt', headers: auth });
  t.equal(ca.body, pki.tls.caPem);
});

t.test('uploads: resumable chunks streamed to disk, size limit, then the import is queued', async (t) => {
  const auth = { ...HOST, ...basic('admin', PASSWORD) };
  const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
  const created = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'airgap-v1.0.0.bin', size: data.length } });
  t.equal(created.statusCode, 201);
  const { id } = created.json<Upload>();
  const put = (start: number, end: number) =>
    app.inject({ method: 'PUT', url: `/api/v1/uploads/${id}`, headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `bytes ${start}-${end - 1}/${data.length}` }, payload: data.subarray(start, end) });
  t.same((await put(0, 1000)).json(), { id, name: 'airgap-v1.0.0.bin', size: 3000, offset: 1000 });
  const gap = await put(2000, 3000);
  t.equal(gap.statusCode, 409, 'a chunk must start at the offset');
  t.match(gap.json(), { code: 'AG_UPLOAD_OFFSET', message: 'the upload is at byte 1000, not 2000' });
  t.equal((await app.inject({ url: `/api/v1/uploads/${id}`, headers: auth })).json<Upload>().offset, 1000, 'the client asks where to resume');
  const early = await app.inject({ method: 'POST', url: '/api/v1/imports', headers: auth, payload: { uploadId: id } });
  t.equal(early.statusCode, 409, 'an incomplete upload is not imported');
  t.equal((await put(1000, 3000)).json<Upload>().offset, 3000);
  const imported = await app.inject({ method: 'POST', url: '/api/v1/imports', headers: auth, payload: { uploadId: id } });
  t.equal(imported.statusCode, 202);
  t.equal(imported.json<{ import: { id: number } }>().import.id, 7);
  const last = queued[queued.length - 1]!;
  t.equal(last.actor, 'admin');
  t.ok((await readFile(last.file)).equals(data), 'the file on disk is the upload, byte for byte');
  t.same((await readdir(layout.uploadsDir)).filter((n) => n.endsWith('.partial')), [], 'no partial file left');

  const big = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'big.bin', size: 2_000_000 } });
  t.equal(big.statusCode, 413);
  const name = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: '../../etc/passwd', size: 10 } });
  t.equal(name.statusCode, 400);
  t.equal(name.json<ApiError>().code, 'AG_UPLOAD_NAME');
  const over = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'small.bin', size: 10 } });
  const overrun = await app.inject({ method: 'PUT', url: `/api/v1/uploads/${over.json<Upload>().id}`, headers: { ...auth, 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(20) });
  t.equal(overrun.statusCode, 413, 'a body longer than the declared size is refused');
  const text = await app.inject({ method: 'PUT', url: `/api/v1/uploads/${over.json<Upload>().id}`, headers: { ...auth, 'content-type': 'text/plain' }, payload: 'hello' });
  t.equal(text.statusCode, 415, 'chunks are octet-streams only');
  const lying = await app.inject({ method: 'PUT', url: `/api/v1/uploads/${over.json<Upload>().id}`, headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-1/10' }, payload: Buffer.alloc(5) });
  t.equal(lying.statusCode, 400, 'Content-Range must match the body');
  const open: string[] = [over.json<Upload>().id];
  for (let i = 0; i < 3; i++) open.push((await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: `x${i}.bin`, size: 10 } })).json<Upload>().id);
  const fifth = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'x9.bin', size: 10 } });
  t.equal(fifth.statusCode, 429, 'at most four open uploads');
  t.equal(fifth.json<ApiError>().code, 'AG_UPLOADS_OPEN');
  for (const id of open) t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/uploads/${id}`, headers: auth })).statusCode, 204);
  const huge = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'h.bin', size: 999_999 } });
  t.equal(huge.statusCode, 201);
  await app.inject({ method: 'DELETE', url: `/api/v1/uploads/${huge.json<Upload>().id}`, headers: auth });
});

t.test('one-shot upload: the .bin as the body of POST /api/v1/imports', async (t) => {
  const auth = { ...HOST, ...basic('admin', PASSWORD) };
  const body = Buffer.alloc(5000, 7);
  const r = await app.inject({ method: 'POST', url: '/api/v1/imports?name=airgap-v2.0.0.bin&allowDowngrade=true', headers: { ...auth, 'content-type': 'application/octet-stream' }, payload: body });
  t.equal(r.statusCode, 202, r.body);
  const last = queued[queued.length - 1]!;
  t.equal(last.allowDowngrade, true);
  t.match(last.file, /airgap-v2\.0\.0\.bin$/);
  t.ok((await readFile(last.file)).equals(body));
});

t.test('import progress as server-sent events', async (t) => {
  const r = await app.inject({ url: '/api/v1/imports/1/events', headers: { ...HOST, ...basic('admin', PASSWORD) } });
  t.equal(r.headers['content-type'], 'text/event-stream');
  t.match(r.body, /^event: update\ndata: \{"importId":1,"state":"running","stage":"images".*\n\nevent: done\ndata: \{"id":1,.*"state":"imported"/s);
  t.equal((await app.inject({ url: '/api/v1/imports/99/events', headers: { ...HOST, ...basic('admin', PASSWORD) } })).statusCode, 404);
});

t.test('the OpenAPI document is generated from the route schemas', async (t) => {
  const r = await app.inject({ url: '/api/v1/openapi.json', headers: HOST });
  t.equal(r.statusCode, 200);
  const doc = r.json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>();
  t.match(doc.openapi, /^3\./);
  for (const path of ['/api/v1/session', '/api/v1/status', '/api/v1/connection', '/api/v1/releases', '/api/v1/images', '/api/v1/imports', '/api/v1/uploads', '/api/v1/events']) {
    t.ok(doc.paths[path], path);
  }
  t.ok(doc.paths['/api/v1/session']!.post, 'with methods');
  t.notOk(doc.paths['/repo/*'], 'only the API is documented');
});

t.test('parallel wrong logins: the limit holds (attempts count before the password check)', async (t) => {
  // The limiter allows 5 attempts a minute per client (registerApi's LoginLimiter defaults).
  const count = (codes: number[], code: number) => codes.filter((c) => c === code).length;
  const before = events.filter((e) => e.kind === 'console.login_failed').length;
  const sessions = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    app.inject({ method: 'POST', url: '/api/v1/session', headers: HOST, payload: { username: 'admin', password: `wrong${i}` }, remoteAddress: '10.4.4.4' })));
  const codes = sessions.map((r) => r.statusCode);
  t.equal(count(codes, 401), 5, 'five attempts are checked');
  t.equal(count(codes, 429), 35, 'the other 35 wait');
  t.equal(events.filter((e) => e.kind === 'console.login_failed').length - before, 5, 'five failures recorded');
  const basics = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    app.inject({ url: '/api/v1/releases', headers: { ...HOST, ...basic('admin', `wrong${i}`) }, remoteAddress: '10.5.5.5' })));
  t.equal(count(basics.map((r) => r.statusCode), 401), 5, 'basic auth: five attempts are checked');
  t.equal(count(basics.map((r) => r.statusCode), 429), 15, 'basic auth: the other 15 wait');
  // A success forgives: four failures, a login, then five more tries are checked again.
  const client = '10.6.6.6';
  const wrong = () => app.inject({ method: 'POST', url: '/api/v1/session', headers: HOST, payload: { username: 'admin', password: 'nope' }, remoteAddress: client });
  for (let i = 0; i < 4; i++) t.equal((await wrong()).statusCode, 401);
  t.equal((await login(client)).r.statusCode, 200);
  for (let i = 0; i < 5; i++) t.equal((await wrong()).statusCode, 401, `try ${i + 1} after the login`);
  t.equal((await wrong()).statusCode, 429);
});

t.test('an Origin is checked against the console\'s configured origins, not the Host header', async (t) => {
  const auth = basic('admin', PASSWORD);
  const rebound = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { host: 'evil.example', origin: 'https://evil.example', ...auth }, payload: { name: 'a.bin', size: 10 } });
  t.equal(rebound.statusCode, 403, 'Origin = Host = evil.example (DNS rebinding) is refused');
  t.equal(rebound.json<ApiError>().code, 'AG_CROSS_SITE');
  const wrongPort = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { host: '10.0.0.5:8443', origin: 'https://10.0.0.5:8443', ...auth }, payload: { name: 'a.bin', size: 10 } });
  t.equal(wrongPort.statusCode, 403, 'the configured address on another port is another origin');
  for (const origin of ['https://10.0.0.5', 'https://LOCALHOST:443']) {
    const ok = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: { host: 'whatever.example', origin, ...auth }, payload: { name: 'a.bin', size: 10 } });
    t.equal(ok.statusCode, 201, `${origin} passes`);
    await app.inject({ method: 'DELETE', url: `/api/v1/uploads/${ok.json<Upload>().id}`, headers: { ...HOST, ...auth } });
  }
});

t.test('security headers: console CSP, no framing or sniffing, HSTS; secrets not cached; repository files sandboxed', async (t) => {
  const page = await app.inject({ url: '/', headers: HOST });
  t.equal(page.statusCode, 200);
  const csp = String(page.headers['content-security-policy']);
  t.match(csp, /default-src 'none'/);
  t.match(csp, /script-src 'self'(;|$)/, 'no inline script');
  t.match(csp, /frame-ancestors 'none'/);
  t.equal(page.headers['x-frame-options'], 'DENY');
  t.equal(page.headers['x-content-type-options'], 'nosniff');
  t.equal(page.headers['referrer-policy'], 'no-referrer');
  t.match(page.headers['strict-transport-security'], /^max-age=\d{7,}/);
  const auth = { ...HOST, ...basic('admin', PASSWORD) };
  const revealed = await app.inject({ url: '/api/v1/connection?reveal=true', headers: auth });
  t.equal(revealed.headers['cache-control'], 'no-store', 'revealed passwords are not cached');
  const { r: session } = await login('10.7.7.7');
  t.equal(session.headers['cache-control'], 'no-store', 'the session and its CSRF token are not cached');
  t.equal((await app.inject({ url: '/api/v1/nothing-here', headers: auth })).headers['cache-control'], 'no-store', 'nor any other API answer');

  await mkdir(join(layout.repoDir, '1.0.0'), { recursive: true });
  await writeFile(join(layout.repoDir, '1.0.0', 'page.html'), '<script>fetch("/api/v1/connection?reveal=true")</script>');
  const repoAuth = { ...HOST, authorization: `Basic ${Buffer.from('airgap-repo:x').toString('base64')}` };
  const file = await app.inject({ url: '/repo/1.0.0/page.html', headers: repoAuth });
  t.equal(file.statusCode, 200);
  t.match(file.headers['content-type'], /^text\/html/, 'the type is kept for curl, helm and kubectl');
  t.match(file.headers['content-security-policy'], /^sandbox(;|$)/, 'but it runs sandboxed: no script, an opaque origin');
  t.equal(file.headers['x-content-type-options'], 'nosniff');
  const listing = await app.inject({ url: '/repo/1.0.0/', headers: repoAuth });
  t.match(listing.headers['content-security-policy'], /^sandbox/, 'listings too');
});

t.test('staging folders and other dot names under /repo/ are neither listed nor served', async (t) => {
  const staging = join(layout.repoDir, '.10.0.70.partial-46');
  await mkdir(join(staging, 'manifests'), { recursive: true });
  await writeFile(join(staging, 'manifests', 'secret.yaml'), 'kind: Secret\n');
  t.teardown(() => rm(staging, { recursive: true, force: true }));
  const repoAuth = { ...HOST, authorization: `Basic ${Buffer.from('airgap-repo:x').toString('base64')}` };
  const root = await app.inject({ url: '/repo/?format=json', headers: repoAuth });
  t.equal(root.statusCode, 200);
  t.notMatch(root.body, /partial/, 'not listed');
  for (const url of ['/repo/.10.0.70.partial-46/?format=json', '/repo/.10.0.70.partial-46/', '/repo/.10.0.70.partial-46', '/repo/.10.0.70.partial-46/manifests/?format=json', '/repo/.10.0.70.partial-46/manifests/secret.yaml', '/repo/%2e10.0.70.partial-46/manifests/secret.yaml']) {
    const r = await app.inject({ url, headers: repoAuth });
    t.equal(r.statusCode, 404, url);
    t.notMatch(r.body, /kind: Secret|"files"/, url);
  }
});

t.test('Content-Range: a malformed range is 416; a body past its range is refused (400) and not appended', async (t) => {
  const auth = { ...HOST, ...basic('admin', PASSWORD) };
  const created = await app.inject({ method: 'POST', url: '/api/v1/uploads', headers: auth, payload: { name: 'range.bin', size: 50 } });
  const { id } = created.json<Upload>();
  t.teardown(() => app.inject({ method: 'DELETE', url: `/api/v1/uploads/${id}`, headers: auth }));
  const put = (range: string, payload: Buffer) => app.inject({ method: 'PUT', url: `/api/v1/uploads/${id}`, headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': range }, payload });
  const offset = async () => (await app.inject({ url: `/api/v1/uploads/${id}`, headers: auth })).json<Upload>().offset;
  for (const range of ['bytes -5-4/50', 'bytes 0-9/*', 'bytes=0-9/50', 'bytes 9-0/50', 'bytes 0-50/50']) {
    const r = await put(range, Buffer.alloc(10));
    t.equal(r.statusCode, 416, range);
    t.equal(r.json<ApiError>().code, 'AG_UPLOAD_RANGE', range);
  }
  t.equal(await offset(), 0, 'nothing appended');
  // Chunked transfer coding (no Content-Length), over real HTTPS: 30 bytes for a 10-byte range.
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const chunked = (range: string, parts: Buffer[]) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method: 'PUT', path: `/api/v1/uploads/${id}`, ca: pki.tls.caPem, headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': range } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const part of parts) req.write(part);
    req.end();
  });
  const long = await chunked('bytes 0-9/50', [Buffer.alloc(10, 1), Buffer.alloc(20, 2)]);
  t.equal(long.status, 400, 'a body past its range');
  t.equal((JSON.parse(long.body) as ApiError).code, 'AG_UPLOAD_LENGTH');
  const kept = await offset();
  t.ok(kept <= 10, `nothing past the range is kept (offset ${kept})`);
  const short = await chunked(`bytes ${kept}-29/50`, [Buffer.alloc(5, 3)]);
  t.equal(short.status, 400, 'nor a chunked body shorter than its range');
  t.equal(await offset(), kept + 5, 'what arrived is kept; the client resumes from the offset');
});
