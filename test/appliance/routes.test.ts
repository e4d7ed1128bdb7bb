/**
 * The Fastify apps through `app.inject`: the file repository (basic auth, listings,
 * dotfiles, traversal), /ca.crt, the HTTP redirect, and the admin API's validation and
 * error shapes.
 */
import t from 'tap';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { buildAdminApp, buildPublicApp, buildRedirectApp, parseBasicAuth, type AdminOperations } from '../../src/appliance/http/app.js';
import { AirgapError, UsageError } from '../../src/kit/errors.js';
import { parseRepoAddress } from '../../src/appliance/config/address.js';
import { tempDir } from '../helpers/temp.js';

const log = pino({ level: 'silent' });
const repoDir = await tempDir(t, 'airgap-routes-');
await mkdir(join(repoDir, '1.0.0', 'manifests'), { recursive: true });
await writeFile(join(repoDir, '1.0.0', 'manifests', 'a.yaml'), 'kind: ConfigMap\n');
await writeFile(join(repoDir, '1.0.0', '.partial.tmp'), 'half');
await writeFile(join(repoDir, '1.0.0', '<b>.txt'), 'x');
const credential = { username: 'airgap-repo', password: 'pa55:word' };
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const auth = { authorization: basic(credential.username, credential.password) };
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

/** The error body every refusal carries. */
interface ApiError { code: string; message: string; hint?: string }
/** POST /v1/setup on the admin API. */
interface SetupReply { details: Record<string, unknown> }
/** GET /v1/events on the admin API. */
interface EventsReply { events: unknown[] }

const app = await buildPublicApp({ log, repoDir, repositoryCredential: () => credential, caPem: () => CA });
t.teardown(() => app.close());

t.test('basic auth parsing (RFC 7617)', async (t) => {
  t.same(parseBasicAuth(basic('a', 'b:c')), { username: 'a', password: 'b:c' });
  t.equal(parseBasicAuth('Bearer x'), undefined);
  t.equal(parseBasicAuth(`Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
  t.equal(parseBasicAuth(undefined), undefined);
});

t.test('the repository needs its credentials', async (t) => {
  for (const headers of [{}, { authorization: basic('airgap-repo', 'wrong') }, { authorization: basic('admin', credential.password) }, { authorization: 'Basic !!!' }]) {
    const r = await app.inject({ url: '/repo/1.0.0/manifests/a.yaml', headers });
    t.equal(r.statusCode, 401);
    t.equal(r.headers['www-authenticate'], 'Basic realm="airgap repository", charset="UTF-8"');
    t.equal(r.json<ApiError>().code, 'AG_UNAUTHORIZED');
    t.notMatch(r.body, /ConfigMap/);
  }
  const ok = await app.inject({ url: '/repo/1.0.0/manifests/a.yaml', headers: auth });
  t.equal(ok.statusCode, 200);
  t.equal(ok.body, 'kind: ConfigMap\n');
});

t.test('listings: HTML for browsers, JSON on request; dotfiles hidden; names escaped', async (t) => {
  const html = await app.inject({ url: '/repo/1.0.0/', headers: { ...auth, accept: 'text/html' } });
  t.equal(html.statusCode, 200);
  t.match(html.headers['content-type'], /text\/html/);
  t.match(html.body, /<title>Index of \/repo\/1\.0\.0\/<\/title>/);
  t.match(html.body, /<a href="\/repo\/">\.\.\/<\/a>/);
  t.match(html.body, /href="\/repo\/1\.0\.0\/manifests\/">manifests\/<\/a>/);
  t.match(html.body, /&#60;b&#62;\.txt/, 'names are escaped');
  t.notMatch(html.body, /<b>\.txt/);
  t.notMatch(html.body, /partial/, 'temp files of an import in progress are not listed');
  const json = await app.inject({ url: '/repo/1.0.0/', headers: { ...auth, accept: 'application/json' } });
  t.same(json.json(), { dirs: ['manifests'], files: ['<b>.txt'] });
  const query = await app.inject({ url: '/repo/?format=json', headers: auth });
  t.same(query.json(), { dirs: ['1.0.0'], files: [] });
  const hidden = await app.inject({ url: '/repo/1.0.0/.partial.tmp', headers: auth });
  t.not(hidden.statusCode, 200, 'dotfiles are not served');
  const noSlash = await app.inject({ url: '/repo/1.0.0/manifests', headers: auth });
  t.equal(noSlash.statusCode, 200);
  t.match(noSlash.body, /<title>Index of \/repo\/1\.0\.0\/manifests\/<\/title>/);
  t.match(noSlash.body, /<a href="\/repo\/1\.0\.0\/">\.\.\/<\/a>/, 'the parent link is absolute, with or without the slash');
});

t.test('no way out of the repository folder', async (t) => {
  // A secret beside the repository folder, where a traversal would land.
  const secret = join(repoDir, '..', `${basename(repoDir)}-secret.txt`);
  await writeFile(secret, 'TOP-SECRET');
  t.teardown(() => rm(secret, { force: true }));
  const name = basename(secret);
  for (const url of [`/repo/../${name}`, `/repo/%2e%2e/${name}`, `/repo/1.0.0/..%2f..%2f..%2f${name}`, `/repo/%2e%2e%2f${name}`, `/repo/..%5c${name}`, `/repo/%2e%2e/%2e%2e/${basename(repoDir)}/1.0.0/manifests/a.yaml`]) {
    const r = await app.inject({ url, headers: auth });
    t.ok(r.statusCode === 403 || r.statusCode === 404 || r.statusCode === 400, `${url}: ${r.statusCode}`);
    t.notMatch(r.body, /TOP-SECRET/, url);
  }
  const direct = await app.inject({ url: `/repo/1.0.0/manifests/a.yaml`, headers: auth });
  t.equal(direct.statusCode, 200, 'the control request works');
  const missing = await app.inject({ url: '/repo/2.0.0/none', headers: auth });
  t.equal(missing.statusCode, 404);
});

t.test('/ca.crt and the landing page need no login', async (t) => {
  const ca = await app.inject({ url: '/ca.crt' });
  t.equal(ca.statusCode, 200);
  t.equal(ca.body, CA);
  t.equal(ca.headers['content-type'], 'application/x-pem-file');
  const home = await app.inject({ url: '/' });
  t.equal(home.statusCode, 200);
  t.match(home.body, /airgap-setup/);
  const unknown = await app.inject({ url: '/nope' });
  t.equal(unknown.statusCode, 404);
  t.same(unknown.json(), { code: 'AG_NOT_FOUND', message: 'no such path: /nope' });
});

t.test('the HTTP app serves the CA and redirects the rest to HTTPS', async (t) => {
  const http = await buildRedirectApp({ log, httpsPort: 443, caPem: () => CA, repoAddress: () => null, fallbackHost: () => '10.0.0.5' });
  t.teardown(() => http.close());
  t.equal((await http.inject({ url: '/ca.crt' })).body, CA);
  const r = await http.inject({ url: '/repo/x?y=1', headers: { host: '10.0.0.5' } });
  t.equal(r.statusCode, 301);
  t.equal(r.headers.location, 'https://10.0.0.5/repo/x?y=1');
  const v6 = await http.inject({ url: '/', headers: { host: '[fd00::5]:80' } });
  t.equal(v6.headers.location, 'https://[fd00::5]/');
  const evil = await http.inject({ url: '/', headers: { host: 'evil.example/"><script>' } });
  t.equal(evil.headers.location, 'https://10.0.0.5/', 'a bad Host header falls back to the repo address');
  const other = await buildRedirectApp({ log, httpsPort: 8443, caPem: () => CA, repoAddress: () => null, fallbackHost: () => '10.0.0.5' });
  t.teardown(() => other.close());
  t.equal((await other.inject({ url: '/a', headers: { host: 'repo.example:8080' } })).headers.location, 'https://repo.example:8443/a');
  const configured = await buildRedirectApp({ log, httpsPort: 443, caPem: () => CA, repoAddress: () => '10.0.0.7', fallbackHost: () => '127.0.0.1' });
  t.teardown(() => configured.close());
  t.equal((await configured.inject({ url: '/repo/?x=1', headers: { host: 'evil.example' } })).headers.location, 'https://10.0.0.7/repo/?x=1', 'after setup: always the repo address, whatever the Host');
  t.equal((await configured.inject({ url: 'http://evil.example/steal?y=2', headers: { host: 'evil.example' } })).headers.location, 'https://10.0.0.7/steal?y=2', 'absolute-form request: only path and query kept');
});

t.test('admin API: validation, error shapes, the setup contract', async (t) => {
  const calls: string[] = [];
  const operations: AdminOperations = {
    async status() {
      throw new Error('secret internals');
    },
    async setup(address) {
      calls.push(address);
      parseRepoAddress(address);
      if (address === 'fail.example') throw new UsageError('not this one', { hint: 'try another' });
      const c = (u: string) => ({ url: 'https://10.0.0.5', username: u, password: 'p', extra: 'dropped' });
      return {
        details: { repository: c('r'), imageRegistry: c('i'), packRegistry: c('p'), console: c('c'), helmRepository: { ...c('r'), addCommand: 'helm repo add' }, caCertificateBase64: 'QQ==' },
        changed: { repoAddress: true, certificate: false, registriesRestarted: [] },
        warnings: [],
      };
    },
    events: (limit) => Array.from({ length: limit }, (_, i) => ({ id: i, at: 'now', actor: 'daemon', kind: 'k', message: 'm', origin: 'local', outcome: 'success' as const })),
    async queueImport(request) {
      throw new AirgapError('AG_NOT_FOUND', `there is no file ${request.file}`);
    },
    listImports: () => [],
    getImport: () => undefined,
    cancelImport: async () => undefined,
    followImport: () => () => {},
    releases: () => ({ current: null, releases: [] }),
    artifacts: () => [],
    connectionDetails: () => {
      const c = (u: string) => ({ url: 'https://10.0.0.5:5000', username: u, password: 'pw', extra: 'dropped' });
      return { repository: c('r'), imageRegistry: c('i'), packRegistry: c('p'), console: c('c'), helmRepository: { ...c('r'), addCommand: 'helm repo add' }, caCertificateBase64: 'QQ==' };
    },
    deleteRelease: async () => ({}),
    collectGarbage: async () => ({}),
    prune: async () => ({}),
    backup: async () => ({}),
    nodeConfig: () => ({ files: [] }),
    followEvents: () => () => {},
  };
  const admin = await buildAdminApp({ log, operations });
  const connection = await admin.inject({ url: '/v1/connection' });
  t.equal(connection.statusCode, 200);
  t.same(connection.json<SetupReply['details']>().imageRegistry, { url: 'https://10.0.0.5:5000', username: 'i', password: 'pw' }, 'GET /v1/connection: the contract fields only');
  t.teardown(() => admin.close());
  const ok = await admin.inject({ method: 'POST', url: '/v1/setup', payload: { repoAddress: '10.0.0.5' } });
  t.equal(ok.statusCode, 200);
  t.same(Object.keys(ok.json<SetupReply>().details), ['repository', 'imageRegistry', 'packRegistry', 'console', 'helmRepository', 'caCertificateBase64']);
  t.same(ok.json<SetupReply>().details.repository, { url: 'https://10.0.0.5', username: 'r', password: 'p' }, 'only the contract fields go out');
  for (const payload of [{}, { repoAddress: '' }, { repoAddress: 5 }, { repoAddress: 'a', more: 1 }]) {
    const bad = await admin.inject({ method: 'POST', url: '/v1/setup', payload });
    t.equal(bad.statusCode, 400, JSON.stringify(payload));
    t.match(bad.json<ApiError>().code, /^AG_(BAD_REQUEST|USAGE)$/);
  }
  const usage = await admin.inject({ method: 'POST', url: '/v1/setup', payload: { repoAddress: 'http://x' } });
  t.equal(usage.statusCode, 400);
  t.equal(usage.json<ApiError>().code, 'AG_USAGE');
  t.same(await admin.inject({ method: 'POST', url: '/v1/setup', payload: { repoAddress: 'fail.example' } }).then((r) => r.json<ApiError>()), { code: 'AG_USAGE', message: 'not this one', hint: 'try another' });
  const internal = await admin.inject({ url: '/v1/status' });
  t.equal(internal.statusCode, 500);
  t.same(internal.json(), { code: 'AG_INTERNAL', message: 'internal error; see the daemon log' }, 'no internals leak');
  t.equal((await admin.inject({ url: '/v1/events?limit=3' })).json<EventsReply>().events.length, 3);
  t.equal((await admin.inject({ url: '/v1/events' })).json<EventsReply>().events.length, 50, 'default limit');
  t.equal((await admin.inject({ url: '/v1/events?limit=0' })).statusCode, 400);
  const missing = await admin.inject({ method: 'POST', url: '/v1/imports', payload: { file: '/nope.bin' } });
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), { code: 'AG_NOT_FOUND', message: 'there is no file /nope.bin' });
  t.equal((await admin.inject({ url: '/v1/imports/7' })).statusCode, 404);
  t.equal((await admin.inject({ url: '/v1/imports/x' })).statusCode, 400);
  t.equal((await admin.inject({ url: '/v1/artifacts?kind=nope' })).statusCode, 400);
});
