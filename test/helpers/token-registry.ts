/**
 * A real `docker-registry` (CNCF distribution) configured for token authentication, with
 * a small stand-in for the token service in front of it (what Harbor, Quay or GitLab run
 * and we cannot install). The stand-in follows distribution's "Token Authentication
 * Specification" and "Token Authentication Implementation": GET realm?service=&scope=
 * with Basic credentials answers `{token, expires_in, issued_at}`, the token a JWS
 * (ES256) whose `kid` is the libtrust key id of the certificate in the registry's
 * `rootcertbundle`, with iss, sub, aud, exp, nbf, iat, jti and the granted `access`.
 * Everything listens on 127.0.0.1 and stops with the test.
 */
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort } from './registry.js';
import { tempDir, type Teardown } from './temp.js';

const ISSUER = 'airgap-test-token-issuer';
const SERVICE = 'airgap-test-registry';

export interface TokenRegistry {
  /** `127.0.0.1:PORT` of the registry (plain HTTP). */
  host: string;
  /** The token service's realm URL. */
  realm: string;
  username: string;
  password: string;
  /** The refresh token (a docker config.json's `identitytoken`) the OAuth2 form (POST) accepts for `username`. */
  refreshToken: string;
  /** Every token request the stand-in answered, in order: its scopes, the status sent, and GET (Basic) or POST (OAuth2 form). */
  tokenRequests: Array<{ scopes: string[]; status: number; method?: string }>;
  /** When > 0, that many next token requests get a token granting nothing (the registry then answers 401). */
  grantNothing: number;
  stop(): Promise<void>;
}

/** RFC 4648 base32 without padding, as libtrust's key ids use it. */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust key id: sha256 of the DER SubjectPublicKeyInfo, 240 bits, base32 in 12 groups of 4. */
function libtrustKeyId(certificatePem: string): string {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  const text = base32(createHash('sha256').update(spki).digest().subarray(0, 30));
  return text.match(/.{4}/g)!.join(':');
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** Parses `repository:name:pull,push` scopes into the JWT `access` claim. */
function accessOf(scopes: string[]): Array<{ type: string; name: string; actions: string[] }> {
  return scopes.map((scope) => {
    const [type, ...rest] = scope.split(':');
    const actions = rest.pop() ?? '';
    return { type: type!, name: rest.join(':'), actions: actions.split(',').filter(Boolean) };
  });
}

function basicOf(req: IncomingMessage): { username: string; password: string } | undefined {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Starts the token service stand-in and a docker-registry that trusts it, and waits until
 * the registry answers GET /v2/ with its Bearer challenge. Both stop, and their folder
 * goes, when `t` ends.
 */
export async function startTokenRegistry(t: Teardown): Promise<TokenRegistry> {
  const dir = await tempDir(t, 'airgap-token-registry-');
  const cleanup: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=airgap test token signer', '-days', '2', '-keyout', join(dir, 'signer.key'), '-out', join(dir, 'signer.crt')]);
    const certificate = await readFile(join(dir, 'signer.crt'), 'utf8');
    const key = createPrivateKey(await readFile(join(dir, 'signer.key'), 'utf8'));
    const kid = libtrustKeyId(certificate);

    const state: TokenRegistry = { host: '', realm: '', username: 'robot', password: randomUUID(), refreshToken: randomUUID(), tokenRequests: [], grantNothing: 0, stop };
    const answer = async (req: IncomingMessage, res: import('node:http').ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      // GET with Basic credentials (distribution's token spec), or POST of an OAuth2 form
      // with a refresh token (its "OAuth2 Token" spec: what docker's identitytoken is).
      let form: URLSearchParams | undefined;
      if (req.method === 'POST') {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      }
      const params = form ?? url.searchParams;
      const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const creds = form ? (form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === state.refreshToken ? { username: state.username, password: state.password } : undefined) : basicOf(req);
      if (url.pathname !== '/token' || params.get('service') !== SERVICE || creds?.username !== state.username || creds.password !== state.password) {
        state.tokenRequests.push({ scopes, status: 401, method: req.method ?? '' });
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
        return;
      }
      const grant = state.grantNothing > 0 ? (state.grantNothing--, []) : scopes;
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', kid }));
      const claims = b64url(JSON.stringify({ iss: ISSUER, sub: creds.username, aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access: accessOf(grant) }));
      const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
      state.tokenRequests.push({ scopes, status: 200, method: req.method ?? '' });
      const token = `${header}.${claims}.${b64url(signature)}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(form ? { access_token: token, expires_in: 300, scope: scopes.join(' ') } : { token, expires_in: 300, issued_at: new Date().toISOString() }));
    };
    const tokenServer: Server = createServer((req, res) => void answer(req, res).catch(() => res.destroy()));
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => tokenServer.close(resolve)));
    state.realm = `http://127.0.0.1:${(tokenServer.address() as { port: number }).port}/token`;

    const port = await freePort();
    state.host = `127.0.0.1:${port}`;
    const config = join(dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log: { level: warn }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
        `http: { addr: ${state.host} }`,
        `auth: { token: { realm: "${state.realm}", service: ${SERVICE}, issuer: ${ISSUER}, rootcertbundle: ${join(dir, 'signer.crt')} } }`,
        '',
      ].join('\n'),
    );
    const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
    cleanup.push(async () => {
      child.kill('SIGTERM');
      await child;
    });
    t.teardown(stop);
    for (let i = 0; i < 100; i++) {
      const challenge = await fetch(`http://${state.host}/v2/`).then((r) => r.headers.get('www-authenticate'), () => null);
      if (challenge?.startsWith('Bearer ')) return state;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`docker-registry with token auth did not start on ${state.host}: ${String((await (child.kill('SIGKILL'), child)).stderr).slice(-2000)}`);
  } catch (err) {
    await stop();
    throw err;
  }
}
