/**
 * A small OCI distribution client (OCI distribution-spec v1.1, "Pull"): manifests and blobs
 * over HTTP(S), with the token (Bearer) and Basic authentication schemes of CNCF
 * distribution. Bodies stream; nothing large is held in memory.
 */
import { Readable } from 'node:stream';
import { RegistryError } from '../kit/errors.js';
import { DOCKER_HUB } from './reference.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import { sha256Digest } from '../kit/digest.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** `host[:port]` as written in references, e.g. `127.0.0.1:5000` or `docker.io`. */
  registry: string;
  /** Plain HTTP instead of HTTPS (a lab mirror). */
  insecure?: boolean;
  credentials?: Credentials;
  userAgent?: string;
}

export interface FetchedManifest {
  bytes: Buffer;
  /** From Content-Type, or the document's own mediaType. */
  mediaType: string;
  /** sha256 of the bytes received. */
  digest: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** Reads at most `limit` bytes of a response body; throws when it is larger. */
async function readLimited(response: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw new RegistryError('AG_REGISTRY_RESPONSE', `${what} is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export class RegistryClient {
  readonly baseUrl: string;
  private readonly options: RegistryClientOptions;
  /** Authorization header per scope, once a challenge has been answered. */
  private readonly authorization = new Map<string, string>();

  constructor(options: RegistryClientOptions) {
    this.options = options;
    const host = options.registry === DOCKER_HUB ? 'registry-1.docker.io' : options.registry;
    this.baseUrl = `${options.insecure ? 'http' : 'https'}://${host}`;
  }

  /**
   * GET /v2/<repository>/manifests/<reference> (distribution-spec, "Pulling manifests").
   * Verifies the bytes against the reference when it is a digest. Throws RegistryError
   * AG_NOT_FOUND (404), AG_UNAUTHORIZED (401/403), AG_DIGEST_MISMATCH, AG_REGISTRY_RESPONSE.
   */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const response = await this.request('GET', repository, `manifests/${reference}`, { Accept: MANIFEST_ACCEPT });
    const bytes = await readLimited(response, MAX_MANIFEST_BYTES, `manifest ${repository}:${reference}`);
    const digest = sha256Digest(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('AG_DIGEST_MISMATCH', `manifest ${repository}@${reference} has digest ${digest}`);
    }
    const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
    return { bytes, mediaType, digest };
  }

  /**
   * GET /v2/<repository>/blobs/<digest> (distribution-spec, "Pulling blobs"), following
   * redirects. Returns the body as a stream; the caller verifies the digest as it reads.
   */
  async getBlob(repository: string, digest: string): Promise<Readable> {
    const response = await this.request('GET', repository, `blobs/${digest}`, {});
    if (!response.body) throw new RegistryError('AG_REGISTRY_RESPONSE', `blob ${digest} came with no body`);
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>, { highWaterMark: 1024 * 1024 });
  }

  /** Sends a request for `/v2/<repository>/<path>`, answering one auth challenge. */
  private async request(method: string, repository: string, path: string, headers: Record<string, string>): Promise<Response> {
    const url = `${this.baseUrl}/v2/${repository}/${path}`;
    const scope = `repository:${repository}:pull`;
    const send = async (): Promise<Response> => {
      const auth = this.authorization.get(scope);
      const all: Record<string, string> = { 'User-Agent': this.options.userAgent ?? 'airgap', ...headers };
      if (auth) all.Authorization = auth;
      try {
        return await fetch(url, { method, headers: all, redirect: 'follow' });
      } catch (cause) {
        throw new RegistryError('AG_REGISTRY_UNREACHABLE', `cannot reach ${this.baseUrl}: ${(cause as Error).cause ?? (cause as Error).message}`, {
          cause,
          hint: this.options.insecure ? 'check the address and that the registry is running' : 'check the address; for a plain-HTTP lab mirror pass --insecure-registry',
        });
      }
    };
    let response = await send();
    if (response.status === 401) {
      await response.body?.cancel();
      await this.answerChallenge(parseChallenge(response.headers.get('www-authenticate')), scope);
      response = await send();
    }
    if (response.ok) return response;
    await response.body?.cancel();
    const what = `${method} ${url}`;
    if (response.status === 404) throw new RegistryError('AG_NOT_FOUND', `${what}: not found`, { status: 404 });
    if (response.status === 401 || response.status === 403) {
      throw new RegistryError('AG_UNAUTHORIZED', `${what}: access denied (${response.status})`, {
        status: response.status,
        hint: 'pass credentials with --registry-auth FILE (a docker config.json)',
      });
    }
    throw new RegistryError('AG_REGISTRY_RESPONSE', `${what}: HTTP ${response.status}`, { status: response.status });
  }

  /** Token or Basic authentication (distribution "Token Authentication Specification"). */
  private async answerChallenge(challenge: Challenge | undefined, scope: string): Promise<void> {
    const creds = this.options.credentials;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (challenge?.scheme === 'basic') {
      if (!basic) throw new RegistryError('AG_UNAUTHORIZED', `${this.baseUrl} needs a username and password`, { hint: 'pass --registry-auth FILE (a docker config.json)' });
      this.authorization.set(scope, basic);
      return;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) {
      throw new RegistryError('AG_UNAUTHORIZED', `${this.baseUrl} asked for an authentication scheme this client does not speak`);
    }
    const tokenUrl = new URL(challenge.params.realm);
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    tokenUrl.searchParams.set('scope', scope);
    const response = await fetch(tokenUrl, { headers: basic ? { Authorization: basic } : {} }).catch((cause: unknown) => {
      throw new RegistryError('AG_REGISTRY_UNREACHABLE', `cannot reach the token service ${tokenUrl.origin}`, { cause });
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new RegistryError('AG_UNAUTHORIZED', `the token service ${tokenUrl.origin} refused (${response.status})`, { status: response.status });
    }
    const body = JSON.parse((await readLimited(response, 1024 * 1024, 'token response')).toString('utf8')) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError('AG_UNAUTHORIZED', `the token service ${tokenUrl.origin} returned no token`);
    this.authorization.set(scope, `Bearer ${token}`);
  }
}
