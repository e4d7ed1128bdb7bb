/**
 * The one OCI distribution client of this project (OCI distribution-spec v1.1): pulling
 * (the builder), pushing (the import, and pushes to a site's own registry) and health
 * checks (the supervisor). It speaks:
 *
 * - authentication: Basic, and the token flow of CNCF distribution's "Token Authentication
 *   Specification" (Bearer; one token per scope set, cached until it expires, fetched
 *   again on a 401);
 * - redirects on GET and HEAD (blob storage behind S3 and the like), dropping
 *   Authorization when the redirect leaves the registry's origin;
 * - a private CA for the registry (and next to the system roots for redirect targets), or
 *   plain HTTP for a lab registry;
 * - an idle timeout on every request and retries with backoff on network errors, 429 and
 *   5xx (honouring `Retry-After`);
 * - whole response bodies up to a limit: past it the response is refused, never cut;
 * - errors that keep the registry's own `errors[]` code, message and detail.
 *
 * It knows nothing of the appliance: the caller passes address, CA and credentials.
 * Bodies of blobs stream in both directions; nothing large is held in memory.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkServerIdentity, rootCertificates, type PeerCertificate } from 'node:tls';
import { AirgapError, RegistryError, type ErrorCode } from '../kit/errors.js';
import { sha256Digest } from '../kit/digest.js';
import { productVersion } from '../kit/version.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import { DOCKER_HUB } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
  /**
   * An OAuth2 refresh token (a docker config.json's `identitytoken`): with a Bearer
   * challenge, tokens are asked for with it (POST of a `grant_type=refresh_token` form)
   * instead of with the username and password.
   */
  identityToken?: string;
}

export interface RegistryClientOptions {
  /**
   * The registry: `host[:port]` as written in image references (`docker.io` is Docker
   * Hub), or a base URL such as `https://10.0.0.5:5000`.
   */
  registry: string;
  /** Plain HTTP instead of HTTPS, for a `host[:port]` registry (a lab mirror). */
  insecure?: boolean;
  /**
   * PEM of a private CA. The registry's own origin then trusts that CA alone (one small
   * TLS context, not the system's ~140 roots in each); blob storage that a redirect leads
   * to trusts it next to the system's roots.
   */
  caPem?: string;
  /**
   * The name the registry's certificate must be checked against when it is not the host
   * of `registry` (a client on loopback to a server whose certificate names only its
   * public address). An IP or a DNS name; RFC 6125 matching (tls.checkServerIdentity).
   */
  serverName?: string;
  credentials?: Credentials;
  /** What repository scopes ask for: `pull`, or `pull,push` for a client that pushes. Default pull. */
  access?: 'pull' | 'push';
  /** For messages: `images registry (https://127.0.0.1:5000)`. Default: the base URL. */
  label?: string;
  /** Default `airgap/<version>`. */
  userAgent?: string;
  /** Parallel sockets to the registry (default 8). */
  maxSockets?: number;
  /** A request with no bytes moving for this long fails, in ms (default 60 000). */
  timeoutMs?: number;
  /** Retries after the first attempt on network errors, 429 and 5xx (default 4). */
  retries?: number;
  /** First backoff step in ms; it doubles each retry, with jitter (default 250). */
  retryBaseMs?: number;
  /** Longest wait a `Retry-After` may ask for, in ms (default 60 000). */
  maxRetryAfterMs?: number;
  /** Aborts every request of this client, and its waits between retries (an import stopping). */
  signal?: AbortSignal;
  /**
   * Uploads blobs larger than this in chunks of this many bytes (distribution-spec,
   * "Pushing a blob in chunks"). Without it, uploads are monolithic until the registry or
   * a proxy answers 413 (body too large); then they are chunked at DEFAULT_CHUNK_BYTES.
   */
  chunkSize?: number;
}

/** Chunk size taken after a 413, in bytes: below the 10 to 100 MiB body limits proxies commonly set. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Smallest chunk a 413 halves down to, bytes. */
const MIN_CHUNK_BYTES = 256 * 1024;

export interface FetchedManifest {
  bytes: Buffer;
  /** From Content-Type, or the document's own mediaType. */
  mediaType: string;
  /** sha256 of the bytes received. */
  digest: string;
}

/**
 * The narrow interface the transfer pipeline pushes through (OCI distribution-spec,
 * "Push"); {@link RegistryClient} implements it for any distribution-spec registry, the
 * bundled ones included.
 */
/** A blob's bytes by position (see format/reader.ts EntrySource): `read` fills `buffer` from its start. */
export interface BlobSource {
  size: number;
  read(buffer: Buffer, position: number, length: number): Promise<number>;
}

export interface PushTarget {
  /** For messages: `images registry (https://10.0.0.5:5000)`. */
  readonly label: string;
  /** True when `repository` already has the blob (HEAD /v2/<name>/blobs/<digest>). */
  hasBlob(repository: string, digest: string): Promise<boolean>;
  /** Mounts a blob from `from` of the same registry; false when the registry uploads instead. */
  mountBlob(repository: string, digest: string, from: string): Promise<boolean>;
  /**
   * Uploads `size` bytes from `body()` as `digest`; the registry verifies the digest. A
   * target that copies by position may read `source` instead of the stream.
   */
  uploadBlob(repository: string, digest: string, size: number, body: () => Readable, signal?: AbortSignal, source?: BlobSource): Promise<void>;
  /**
   * For a target that defers its writes: puts every blob uploaded or mounted so far in
   * place, durably. The transfer calls it before any manifest names those blobs. A
   * registry's API has nothing to defer, so RegistryClient has none.
   */
  commit?(signal?: AbortSignal): Promise<void>;
  /** True when the manifest `digest` is in `repository`. */
  hasManifest(repository: string, digest: string): Promise<boolean>;
  /** The digest `repository:tag` points at, or undefined. */
  tagDigest(repository: string, tag: string): Promise<string | undefined>;
  /** PUT /v2/<name>/manifests/<reference>; returns the registry's Docker-Content-Digest. */
  putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string>;
  /** Points `repository:tag` at the manifest `digest` already in the repository. */
  retag(repository: string, tag: string, digest: string): Promise<void>;
  /** Tags of `repository` (empty when the repository does not exist). */
  listTags(repository: string): Promise<string[]>;
  /** Every repository (GET /v2/_catalog, all pages). */
  catalog(): Promise<string[]>;
  close(): void;
}

/** Largest tag list or catalog page read, in bytes. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;
/** Largest token response read, in bytes. */
const MAX_TOKEN_BYTES = 1024 * 1024;
/** Redirects followed on one GET or HEAD. */
const MAX_REDIRECTS = 5;
/** Token lifetime when the token service does not say (the spec's default), seconds. */
const DEFAULT_TOKEN_SECONDS = 60;
const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const RETRY_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses one WWW-Authenticate challenge: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** The distribution-spec error document: `{"errors":[{"code","message","detail"}]}`. */
function registryErrors(body: Buffer): { code?: string; text: string } {
  try {
    const errors = (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> }).errors ?? [];
    if (errors.length === 0) return { text: '' };
    const text = errors
      .map((e) => {
        const detail = e.detail === undefined || e.detail === null ? '' : typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
        return [e.code && `${e.code}:`, e.message, detail && `(${detail.slice(0, 300)})`].filter(Boolean).join(' ');
      })
      .join('; ');
    return { ...(errors[0]?.code ? { code: errors[0].code } : {}), text };
  } catch {
    return { text: body.toString('utf8').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 200) };
  }
}

/**
 * Whether a reply says the registry's storage is full: 507 Insufficient Storage, or
 * distribution's 500 whose detail carries the OS error (ENOSPC is errno 28, or its text).
 * Not worth a retry: the disk stays full.
 */
function saysDiskFull(reply: RegistryReply): boolean {
  if (reply.status === 507) return true;
  if (reply.status < 500) return false;
  const text = reply.body.toString('utf8', 0, Math.min(reply.body.length, 64 * 1024));
  return /no space left on device|disk quota exceeded|"Err":\s*28\b/i.test(text);
}

/** Seconds or an HTTP date (RFC 9110, "Retry-After"), as milliseconds from now. */
function retryAfterMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A response: status, headers and the whole body, or the unread stream. */
export interface RegistryReply {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body (empty for a streamed reply and for HEAD). */
  body: Buffer;
  /** The unread body, when the request asked for a stream and the status is 2xx. */
  stream?: IncomingMessage;
  /** The URL that answered (after redirects). */
  url: URL;
}

interface SendOptions {
  headers?: Record<string, string | number>;
  /** A Buffer, or a function that opens the body afresh for each attempt. */
  body?: Buffer | (() => Readable);
  /** Token scopes this request needs (`repository:NAME:pull,push`, `registry:catalog:*`). */
  scopes?: string[];
  signal?: AbortSignal;
  /** Largest body read, in bytes; a larger one is refused (default MAX_MANIFEST_BYTES). */
  limit?: number;
  /** Return a 2xx body unread, as `stream`. */
  stream?: boolean;
  /** Retry on network errors, 429 and 5xx (default true). */
  retry?: boolean;
}

interface TokenEntry {
  authorization: string;
  /** ms since epoch; refetched a little before. */
  expiresAt: number;
}

/**
 * A client for one registry. Reuses keep-alive sockets; `close()` ends them.
 * Methods throw RegistryError with a code: AG_NOT_FOUND (404), AG_UNAUTHORIZED (401/403
 * or a failed token exchange), AG_REGISTRY_UNREACHABLE (network, TLS, timeout after the
 * retries), AG_REGISTRY_RESPONSE (another status, or a body past its limit), AG_REGISTRY_PUSH
 * (a refused push), AG_DIGEST_MISMATCH (a manifest that does not match its digest).
 * `status` and `registryCode` (e.g. DIGEST_INVALID) carry the registry's own answer.
 */
export class RegistryClient implements PushTarget {
  readonly baseUrl: string;
  readonly label: string;
  private readonly base: URL;
  private readonly options: RegistryClientOptions;
  private readonly agent: HttpAgent | HttpsAgent;
  /** Agents for other origins a redirect leads to, by protocol. */
  private readonly foreignAgents = new Map<string, HttpAgent | HttpsAgent>();
  /** The private CA, if any: the registry's own origin trusts it alone. */
  private readonly caPem: string | undefined;
  private readonly userAgent: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  /** Chunk size of uploads, bytes; set by the option, or after a 413 to a monolithic upload. */
  private chunkSize: number | undefined;
  /** The scheme the registry asked for, once known: Basic goes with every request. */
  private scheme: 'basic' | 'bearer' | undefined;
  /** realm and service of the Bearer challenge, for fetching tokens of new scopes up front. */
  private bearer: { realm: string; service?: string } | undefined;
  /** Authorization per scope set, with expiry. */
  private readonly tokens = new Map<string, TokenEntry>();
  /** Token requests under way, by scope set: parallel requests share one. */
  private readonly pendingTokens = new Map<string, Promise<string>>();

  /** Throws RegistryError AG_BAD_REFERENCE when `registry` is not a host or http(s) URL. */
  constructor(options: RegistryClientOptions) {
    this.options = options;
    const registry = options.registry;
    let base: URL;
    try {
      base = /^https?:\/\//.test(registry)
        ? new URL(registry)
        : new URL(`${options.insecure ? 'http' : 'https'}://${registry === DOCKER_HUB ? 'registry-1.docker.io' : registry}`);
    } catch (cause) {
      throw new RegistryError('AG_BAD_REFERENCE', `'${registry}' is not a registry address (HOST[:PORT] or https://HOST[:PORT])`, { cause });
    }
    this.base = new URL(base.origin);
    this.baseUrl = base.origin;
    this.label = options.label ?? this.baseUrl;
    this.caPem = options.caPem;
    this.agent = this.makeAgent(this.base.protocol, options.maxSockets ?? 8, this.caPem ? [this.caPem] : undefined, options.serverName);
    this.userAgent = options.userAgent ?? `airgap/${productVersion()}`;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.retries = options.retries ?? 4;
    this.chunkSize = options.chunkSize;
  }

  close(): void {
    this.agent.destroy();
    for (const agent of this.foreignAgents.values()) agent.destroy();
    this.foreignAgents.clear();
  }

  /** `ca` undefined: the system's roots. */
  private makeAgent(protocol: string, maxSockets: number, ca: string[] | undefined, serverName?: string): HttpAgent | HttpsAgent {
    return protocol === 'http:'
      ? new HttpAgent({ keepAlive: true, maxSockets })
      : new HttpsAgent({ keepAlive: true, maxSockets, ...(ca ? { ca } : {}), ...(serverName ? { checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(serverName, cert) } : {}) });
  }

  private agentFor(url: URL): HttpAgent | HttpsAgent {
    if (url.origin === this.base.origin) return this.agent;
    let agent = this.foreignAgents.get(url.protocol);
    // Blob storage a redirect leads to may carry a public certificate or the site's.
    if (!agent) this.foreignAgents.set(url.protocol, (agent = this.makeAgent(url.protocol, 8, this.caPem ? [...rootCertificates, this.caPem] : undefined)));
    return agent;
  }

  /** The token scope for `repository` (distribution's token auth); `*` asks for delete too. */
  private repositoryScope(repository: string, actions?: '*'): string {
    return `repository:${repository}:${actions ?? (this.options.access === 'push' ? 'pull,push' : 'pull')}`;
  }

  // ---- pull -------------------------------------------------------------------------------

  /**
   * GET /v2/ (distribution-spec, "API version check") with the client's credentials:
   * the HTTP status (200 when reachable and the credentials are good). One attempt, no
   * retries: the caller is a health check. Rejects on network, TLS or timeout errors.
   */
  async ping(signal?: AbortSignal): Promise<number> {
    try {
      return (await this.send('GET', '/v2/', { retry: false, limit: 64 * 1024, ...(signal ? { signal } : {}) })).status;
    } catch (err) {
      if (err instanceof RegistryError && err.status === 401) return 401; // no credentials for a Basic challenge
      throw err;
    }
  }

  /**
   * GET /v2/<repository>/manifests/<reference> (distribution-spec, "Pulling manifests").
   * Verifies the bytes against the reference when it is a digest. Refuses a manifest
   * larger than MAX_MANIFEST_BYTES. Throws RegistryError AG_NOT_FOUND, AG_UNAUTHORIZED,
   * AG_DIGEST_MISMATCH, AG_REGISTRY_RESPONSE.
   */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `manifest ${repository}:${reference}`;
    const reply = await this.send('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [this.repositoryScope(repository)],
    });
    if (reply.status !== 200) this.fail(`GET ${what}`, reply);
    const digest = sha256Digest(reply.body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('AG_DIGEST_MISMATCH', `manifest ${repository}@${reference} from ${this.label} has digest ${digest}`);
    }
    const mediaType = String(reply.headers['content-type'] ?? '').split(';')[0]!.trim();
    return { bytes: reply.body, mediaType, digest };
  }

  /**
   * GET /v2/<repository>/blobs/<digest> (distribution-spec, "Pulling blobs"), following
   * redirects (without Authorization to another origin). Returns the body as a stream;
   * the caller verifies the digest as it reads. Throws as getManifest.
   */
  async getBlob(repository: string, digest: string, signal?: AbortSignal): Promise<Readable> {
    const reply = await this.send('GET', `/v2/${repository}/blobs/${digest}`, {
      scopes: [this.repositoryScope(repository)],
      stream: true,
      ...(signal ? { signal } : {}),
    });
    if (!reply.stream) this.fail(`GET blob ${digest} of ${repository}`, reply);
    return reply.stream;
  }

  // ---- push (PushTarget) ------------------------------------------------------------------

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const reply = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`, { scopes: [this.repositoryScope(repository)] });
    if (reply.status === 200) return true;
    if (reply.status === 404) return false;
    this.fail(`HEAD blob ${digest} in ${repository}`, reply, 'AG_REGISTRY_PUSH');
  }

  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const reply = await this.send('POST', `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, {
      headers: { 'content-length': 0 },
      scopes: [this.repositoryScope(repository), `repository:${from}:pull`],
    });
    if (reply.status === 201) return true;
    if (reply.status === 202) {
      // The registry opened an upload session instead; cancel it, the caller uploads.
      const location = reply.headers.location;
      if (location) await this.send('DELETE', location, { scopes: [this.repositoryScope(repository)], retry: false }).catch(() => undefined);
      return false;
    }
    // Anything else (ECR-style registries without mounts answer 4xx): upload instead; a
    // repository the registry truly refuses fails the upload with the reason.
    return false;
  }

  /**
   * Monolithic upload (distribution-spec, "Pushing a blob monolithically": POST, then PUT
   * with ?digest=), or chunked ("Pushing a blob in chunks": POST, a PATCH per chunk with
   * its Content-Range, then PUT with ?digest=) when the blob is larger than the chunk
   * size; a 413 to a monolithic PUT switches this client to chunks. The upload is retried
   * as a whole on network errors, 429 and 5xx, with the body opened afresh; an error of
   * the body stream itself (a damaged source) is thrown as it is, never retried. The
   * registry verifies the digest (DIGEST_INVALID).
   */
  async uploadBlob(repository: string, digest: string, size: number, body: () => Readable, callSignal?: AbortSignal): Promise<void> {
    const scopes = [this.repositoryScope(repository)];
    const signal = this.signalFor(callSignal);
    /** This upload's chunk size after a 413 (set once, then only halved: the retries are bounded). */
    let forced: number | undefined;
    for (let attempt = 0; ; attempt++) {
      /** This attempt's chunk size; undefined: monolithic. */
      let chunkSize: number | undefined;
      try {
        const start = await this.send('POST', `/v2/${repository}/blobs/uploads/`, { headers: { 'content-length': 0 }, scopes, ...(signal ? { signal } : {}) });
        if (start.status !== 202 || !start.headers.location) this.fail(`start of an upload to ${repository}`, start, 'AG_REGISTRY_PUSH', repository);
        let location = new URL(start.headers.location, start.url);
        chunkSize = forced ?? (this.chunkSize !== undefined && size > this.chunkSize ? this.chunkSize : undefined);
        let put: RegistryReply;
        try {
          if (chunkSize !== undefined) {
            const session = { location };
            try {
              await this.sendChunks(session, repository, size, body(), chunkSize, scopes, signal);
            } finally {
              location = session.location; // a failed chunk cancels the session where it is now
            }
          }
          location.searchParams.set('digest', digest);
          put = await this.send('PUT', location.href, {
            headers: chunkSize !== undefined ? { 'content-length': 0 } : { 'content-type': 'application/octet-stream', 'content-length': size },
            ...(chunkSize !== undefined ? {} : { body }),
            scopes,
            retry: false,
            ...(signal ? { signal } : {}),
          });
        } catch (err) {
          await this.cancelUpload(location, scopes);
          throw err;
        }
        if (put.status === 201) return;
        await this.cancelUpload(location, scopes);
        if (put.status === 413 && chunkSize === undefined && size > 1) {
          // The registry or a proxy in front of it refuses bodies this large: send chunks.
          // Later uploads: chunks of 8 MiB (or half this blob), never below 256 KiB because
          // one small blob was over the limit. This one: chunks smaller than itself.
          this.chunkSize = Math.min(this.chunkSize ?? Infinity, Math.max(MIN_CHUNK_BYTES, size > DEFAULT_CHUNK_BYTES ? DEFAULT_CHUNK_BYTES : Math.ceil(size / 2)));
          forced = size > this.chunkSize ? this.chunkSize : Math.ceil(size / 2);
          attempt--;
          continue;
        }
        if (RETRY_STATUSES.has(put.status) && !saysDiskFull(put) && attempt < this.retries && !signal?.aborted) {
          await this.backoff(attempt, put, signal);
          continue;
        }
        this.fail(`upload of ${digest} (${size} bytes) to ${repository}`, put, 'AG_REGISTRY_PUSH');
      } catch (err) {
        if (err instanceof RegistryError && err.status === 413 && chunkSize !== undefined && chunkSize > MIN_CHUNK_BYTES) {
          // A chunk was still too large for the registry or its proxy: halve, start again.
          this.chunkSize = Math.min(this.chunkSize ?? chunkSize, Math.max(MIN_CHUNK_BYTES, Math.floor(chunkSize / 2)));
          forced = Math.max(MIN_CHUNK_BYTES, Math.floor(chunkSize / 2));
          attempt--;
          continue;
        }
        if (err instanceof RegistryError && err.transient && attempt < this.retries && !signal?.aborted) {
          await this.backoff(attempt, undefined, signal);
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * The PATCH requests of a chunked upload: `source` cut into chunks of `chunkSize` bytes,
   * each sent with `Content-Range: <first>-<last>` at the session's latest Location.
   * Leaves `session.location` at the Location to finish (or cancel) the upload at. Throws RegistryError when a chunk is
   * refused (416: the registry holds another range), AG_TRUNCATED-like errors of the
   * source as they are.
   */
  private async sendChunks(session: { location: URL }, repository: string, size: number, source: Readable, chunkSize: number, scopes: string[], signal: AbortSignal | undefined): Promise<void> {
    let offset = 0;
    try {
      for await (const chunk of chunksOf(source, chunkSize)) {
        const patch = await this.send('PATCH', session.location.href, {
          headers: { 'content-type': 'application/octet-stream', 'content-length': chunk.length, 'content-range': `${offset}-${offset + chunk.length - 1}` },
          body: () => Readable.from([chunk]),
          scopes,
          retry: false,
          ...(signal ? { signal } : {}),
        });
        if (patch.status !== 202 || !patch.headers.location) this.fail(`chunk ${offset}-${offset + chunk.length - 1} of an upload to ${repository}`, patch, 'AG_REGISTRY_PUSH', repository);
        session.location = new URL(patch.headers.location, patch.url);
        offset += chunk.length;
      }
    } finally {
      source.destroy();
    }
    if (offset !== size) throw new RegistryError('AG_REGISTRY_PUSH', `the blob for ${repository} gave ${offset} bytes, ${size} expected`);
  }

  /**
   * DELETE of an upload session that failed (distribution-spec, "Canceling an upload"), so
   * its partial data goes now rather than at the registry's purge. One try, 5 s; never throws.
   */
  private async cancelUpload(location: URL, scopes: string[]): Promise<void> {
    const bare = new URL(location);
    bare.searchParams.delete('digest');
    const timeout = AbortSignal.timeout(5000);
    // Not through send(): the client's own signal may be what ended the upload.
    await this.authenticated('DELETE', new URL(bare.href, this.base), { scopes, retry: false, signal: timeout }).catch(() => undefined);
  }

  async hasManifest(repository: string, digest: string): Promise<boolean> {
    // distribution answers 404 to OCI manifests unless their media type is accepted.
    const reply = await this.send('HEAD', `/v2/${repository}/manifests/${digest}`, { headers: { accept: MANIFEST_ACCEPT }, scopes: [this.repositoryScope(repository)] });
    if (reply.status === 200) return true;
    if (reply.status === 404) return false;
    this.fail(`HEAD manifest ${digest} in ${repository}`, reply, 'AG_REGISTRY_PUSH');
  }

  async tagDigest(repository: string, tag: string): Promise<string | undefined> {
    const reply = await this.send('HEAD', `/v2/${repository}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT }, scopes: [this.repositoryScope(repository)] });
    if (reply.status === 404) return undefined;
    if (reply.status !== 200) this.fail(`HEAD ${repository}:${tag}`, reply, 'AG_REGISTRY_PUSH');
    return reply.headers['docker-content-digest'] as string | undefined;
  }

  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const reply = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, {
      headers: { 'content-type': mediaType, 'content-length': bytes.length },
      body: bytes,
      scopes: [this.repositoryScope(repository)],
    });
    if (reply.status !== 201) this.fail(`PUT manifest ${repository}:${reference}`, reply, 'AG_REGISTRY_PUSH');
    return (reply.headers['docker-content-digest'] as string | undefined) ?? '';
  }

  /**
   * DELETE /v2/<name>/manifests/<digest> (distribution-spec "Deleting Manifests"; the
   * registry must allow deletes). CNCF distribution also removes the tags that point at
   * it. True when it was deleted, false when it was not there (404). Throws RegistryError.
   */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const reply = await this.send('DELETE', `/v2/${repository}/manifests/${digest}`, { scopes: [this.repositoryScope(repository, '*')] });
    if (reply.status === 202 || reply.status === 200) return true;
    if (reply.status === 404) return false;
    this.fail(`DELETE manifest ${digest} in ${repository}`, reply, 'AG_REGISTRY_PUSH');
  }

  /** GET the manifest by digest (whole, up to MAX_MANIFEST_BYTES), then PUT it as the tag. */
  async retag(repository: string, tag: string, digest: string): Promise<void> {
    const manifest = await this.getManifest(repository, digest);
    await this.putManifest(repository, tag, manifest.mediaType, manifest.bytes);
  }

  async listTags(repository: string): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list?n=1000`;
    while (path) {
      const reply = await this.send('GET', path, { scopes: [this.repositoryScope(repository)], limit: MAX_LIST_BYTES });
      if (reply.status === 404) return [];
      if (reply.status !== 200) this.fail(`tags of ${repository}`, reply);
      out.push(...((this.json(reply) as { tags?: string[] | null }).tags ?? []));
      path = nextLink(reply);
    }
    return out;
  }

  async catalog(): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=1000';
    while (path) {
      const reply = await this.send('GET', path, { scopes: ['registry:catalog:*'], limit: MAX_LIST_BYTES });
      if (reply.status !== 200) this.fail('catalog', reply);
      out.push(...((this.json(reply) as { repositories?: string[] | null }).repositories ?? []));
      path = nextLink(reply);
    }
    return out;
  }

  // ---- transport --------------------------------------------------------------------------

  /** The client's signal and a call's, as one. */
  private signalFor(call: AbortSignal | undefined): AbortSignal | undefined {
    const own = this.options.signal;
    if (!own) return call;
    if (!call) return own;
    return AbortSignal.any([own, call]);
  }

  private json(reply: RegistryReply): unknown {
    try {
      return JSON.parse(reply.body.toString('utf8'));
    } catch (cause) {
      throw new RegistryError('AG_REGISTRY_RESPONSE', `${this.label} answered ${reply.url.pathname} with a body that is not JSON`, { cause });
    }
  }

  /** Throws the RegistryError for an unexpected reply, with the registry's own words. */
  private fail(what: string, reply: RegistryReply, code: ErrorCode = 'AG_REGISTRY_RESPONSE', repository?: string): never {
    const { code: registryCode, text } = registryErrors(reply.body);
    const status = reply.status;
    // The registry's own words go before the verdict, so messages end the same way for all.
    const at = `${what} on ${this.label}${text ? ` (registry: ${text})` : ''}`;
    const options = { status, ...(registryCode ? { registryCode } : {}) };
    // Harbor and GitLab keep repositories in projects or groups that must exist first.
    const project = repository?.split('/')[0];
    const projectHint = project && (status === 404 || /project|namespace|group/i.test(text)) ? `the registry may have no project (or group) '${project}': create it, or push under one that exists (--to REGISTRY/PROJECT)` : undefined;
    if (status === 404) throw new RegistryError('AG_NOT_FOUND', `${at}: not found`, { ...options, ...(projectHint ? { hint: projectHint } : {}) });
    if (status === 401 || status === 403) {
      const who = this.options.credentials ? ` to user '${this.options.credentials.username}'` : ' without credentials';
      throw new RegistryError('AG_UNAUTHORIZED', `${at}: access denied${who} (${status})`, {
        ...options,
        hint: projectHint ?? (this.options.credentials ? 'the registry refused these credentials or this repository; check the username, password and its permissions' : 'pass credentials (--registry-auth FILE, a docker config.json)'),
      });
    }
    const diskFull = saysDiskFull(reply);
    const hint = diskFull ? 'the registry volume is full; free space and try again' : undefined;
    throw new RegistryError(code, `${at}: HTTP ${status}${diskFull ? ' (its storage is full)' : ''}`, { ...options, diskFull, ...(hint ? { hint } : {}) });
  }

  /** Waits before retry `attempt` (0-based): Retry-After when the reply has one, else backoff with jitter. */
  private async backoff(attempt: number, reply: RegistryReply | undefined, signal?: AbortSignal): Promise<void> {
    const asked = retryAfterMs(reply?.headers['retry-after']);
    const base = this.options.retryBaseMs ?? 250;
    const ms = asked !== undefined ? Math.min(asked, this.options.maxRetryAfterMs ?? 60_000) : Math.min(base * 2 ** attempt, 10_000) * (0.5 + Math.random() / 2);
    await sleep(ms, signal);
  }

  /**
   * One request with authentication, redirects (GET/HEAD) and retries. Resolves the
   * reply whatever its status; rejects with RegistryError on network errors, timeouts,
   * bodies past their limit, and with the body's own error when the upload body fails.
   */
  async send(method: string, pathOrUrl: string, sendOptions: SendOptions = {}): Promise<RegistryReply> {
    const url = new URL(pathOrUrl, this.base);
    const signal = this.signalFor(sendOptions.signal);
    const options = signal ? { ...sendOptions, signal } : sendOptions;
    for (let attempt = 0; ; attempt++) {
      let reply: RegistryReply;
      try {
        reply = await this.authenticated(method, url, options);
      } catch (err) {
        if (options.retry !== false && err instanceof RegistryError && err.transient && attempt < this.retries && !options.signal?.aborted) {
          await this.backoff(attempt, undefined, options.signal);
          continue;
        }
        throw err;
      }
      if (options.retry !== false && RETRY_STATUSES.has(reply.status) && !saysDiskFull(reply) && attempt < this.retries && !options.signal?.aborted) {
        reply.stream?.resume();
        await this.backoff(attempt, reply, options.signal);
        continue;
      }
      return reply;
    }
  }

  /** One exchange; a 401 is answered once (a first challenge, or an expired token). */
  private async authenticated(method: string, url: URL, options: SendOptions): Promise<RegistryReply> {
    const scopes = options.scopes ?? [];
    const sent = await this.authorization(scopes);
    let reply = await this.exchange(method, url, options, sent);
    if (reply.status !== 401 || url.origin !== this.base.origin) return reply;
    reply.stream?.resume();
    const challenge = parseChallenge(headerText(reply.headers['www-authenticate']));
    if (!(await this.answer(challenge, scopes, sent))) return reply;
    reply = await this.exchange(method, url, options, await this.authorization(scopes));
    return reply;
  }

  /** The Authorization header for these scopes, if the scheme is known and a token is at hand. */
  private async authorization(scopes: string[]): Promise<string | undefined> {
    if (this.scheme === 'basic') return this.basic();
    if (this.scheme !== 'bearer') return undefined;
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.authorization;
    return this.fetchToken(scopes);
  }

  private basic(): string | undefined {
    const c = this.options.credentials;
    return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
  }

  /**
   * Takes a 401's challenge. Returns true when the request is worth sending again: a
   * scheme learnt, or a Bearer token that was sent and is now replaced.
   */
  private async answer(challenge: Challenge | undefined, scopes: string[], sent: string | undefined): Promise<boolean> {
    if (challenge?.scheme === 'basic') {
      if (!this.options.credentials) {
        throw new RegistryError('AG_UNAUTHORIZED', `${this.label} needs a username and password`, { status: 401, hint: 'pass credentials (--registry-auth FILE, a docker config.json)' });
      }
      if (sent?.startsWith('Basic ')) return false; // the credentials themselves were refused
      this.scheme = 'basic';
      return true;
    }
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      this.scheme = 'bearer';
      this.bearer = { realm: challenge.params.realm, ...(challenge.params.service ? { service: challenge.params.service } : {}) };
      const key = scopeKey(scopes);
      if (sent?.startsWith('Bearer ')) {
        // The token sent was refused (expired, or revoked): unless another request has
        // replaced it meanwhile, fetch a new one, once.
        const cached = this.tokens.get(key);
        if (cached && cached.authorization !== sent) return true;
        this.tokens.delete(key);
      }
      // The challenge may name a scope the client did not ask for; ask for both.
      const wanted = challenge.params.scope ? mergeScopes(scopes, challenge.params.scope.split(' ')) : scopes;
      const authorization = await this.fetchToken(wanted);
      if (scopeKey(wanted) !== key) this.tokens.set(key, this.tokens.get(scopeKey(wanted))!);
      return authorization !== sent;
    }
    if (challenge === undefined) return false;
    throw new RegistryError('AG_UNAUTHORIZED', `${this.label} asked for the ${challenge.scheme} authentication scheme, which this client does not speak`, { status: 401 });
  }

  /** A token for `scopes`: the one being fetched for the same scope set, or a new request. */
  private fetchToken(scopes: string[]): Promise<string> {
    const key = scopeKey(scopes);
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.requestToken(scopes).finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    return pending;
  }

  /** GET realm?service=…&scope=… (distribution "Token Authentication Specification"), cached per scope set. */
  private async requestToken(scopes: string[]): Promise<string> {
    const bearer = this.bearer!;
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(bearer.realm);
    } catch (cause) {
      throw new RegistryError('AG_UNAUTHORIZED', `${this.label} named a token service that is not a URL: ${bearer.realm}`, { cause });
    }
    const identityToken = this.options.credentials?.identityToken;
    // With an identity token: the OAuth2 form (distribution "Token Authentication
    // Implementation" / "OAuth2 Token": POST, grant_type=refresh_token), no Basic.
    const form = identityToken
      ? Buffer.from(new URLSearchParams({ grant_type: 'refresh_token', refresh_token: identityToken, client_id: 'airgap', ...(bearer.service ? { service: bearer.service } : {}), scope: scopes.join(' ') }).toString())
      : undefined;
    if (!form) {
      if (bearer.service) tokenUrl.searchParams.set('service', bearer.service);
      for (const scope of scopes) tokenUrl.searchParams.append('scope', scope);
    }
    const basic = form ? undefined : this.basic();
    const requested = Date.now();
    let reply: RegistryReply;
    for (let attempt = 0; ; attempt++) {
      try {
        const request = { limit: MAX_TOKEN_BYTES, ...(this.options.signal ? { signal: this.options.signal } : {}) };
        reply = form
          ? await this.exchange('POST', tokenUrl, { ...request, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': form.length }, body: () => Readable.from([form]) }, undefined)
          : await this.exchange('GET', tokenUrl, request, basic);
      } catch (err) {
        if (err instanceof RegistryError && err.transient && attempt < this.retries) {
          await this.backoff(attempt, undefined, this.options.signal);
          continue;
        }
        throw err;
      }
      if (RETRY_STATUSES.has(reply.status) && attempt < this.retries) {
        await this.backoff(attempt, reply, this.options.signal);
        continue;
      }
      break;
    }
    if (reply.status !== 200) {
      const { text } = registryErrors(reply.body);
      const who = identityToken ? ' the identity token (identitytoken)' : this.options.credentials ? ` user '${this.options.credentials.username}'` : ' an anonymous request';
      throw new RegistryError('AG_UNAUTHORIZED', `the token service ${tokenUrl.origin} of ${this.label} refused${who} (${reply.status})${text ? `: ${text}` : ''}`, {
        status: reply.status,
        hint: identityToken ? 'log in again to get a new identity token (docker login), or give a username and password' : basic ? 'check the username and password' : 'pass credentials (--registry-auth FILE, a docker config.json)',
      });
    }
    let doc: { token?: string; access_token?: string; expires_in?: number };
    try {
      doc = JSON.parse(reply.body.toString('utf8')) as typeof doc;
    } catch (cause) {
      throw new RegistryError('AG_UNAUTHORIZED', `the token service ${tokenUrl.origin} answered with a body that is not JSON`, { cause });
    }
    const token = doc.token ?? doc.access_token;
    if (!token) throw new RegistryError('AG_UNAUTHORIZED', `the token service ${tokenUrl.origin} returned no token`);
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
    // Refetch 10 s (or a tenth of a short lifetime) before it expires.
    const margin = Math.min(10, seconds / 10) * 1000;
    const entry = { authorization: `Bearer ${token}`, expiresAt: requested + seconds * 1000 - margin };
    this.tokens.set(scopeKey(scopes), entry);
    return entry.authorization;
  }

  /**
   * One HTTP exchange, following redirects on GET and HEAD (without Authorization off the
   * registry's origin). Never retries.
   */
  private async exchange(method: string, url: URL, options: SendOptions, authorization: string | undefined): Promise<RegistryReply> {
    let current = url;
    for (let hop = 0; ; hop++) {
      // Authorization goes to the origin it was meant for, never along a redirect elsewhere.
      const reply = await this.once(method, current, options, current.origin === url.origin ? authorization : undefined);
      const location = reply.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(reply.status) && location && (method === 'GET' || method === 'HEAD');
      if (!redirect) return reply;
      reply.stream?.resume();
      if (hop >= MAX_REDIRECTS) throw new RegistryError('AG_REGISTRY_RESPONSE', `${method} ${url.pathname} on ${this.label}: more than ${MAX_REDIRECTS} redirects`);
      current = new URL(location, current);
      if (current.protocol !== 'https:' && current.protocol !== 'http:') {
        throw new RegistryError('AG_REGISTRY_RESPONSE', `${this.label} redirected to a ${current.protocol} URL`);
      }
    }
  }

  /** A single request on the socket pool: the reply with its whole body or its stream. */
  private once(method: string, url: URL, options: SendOptions, authorization: string | undefined): Promise<RegistryReply> {
    const limit = options.limit ?? MAX_MANIFEST_BYTES;
    const headers: Record<string, string | number> = { 'user-agent': this.userAgent, ...options.headers };
    if (authorization) headers.authorization = authorization;
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const what = `${method} ${url.origin === this.base.origin ? url.pathname : url.origin + url.pathname}`;
    return new Promise<RegistryReply>((resolve, reject) => {
      // An error of the body stream (a damaged source) is the cause, not the request it broke.
      let bodyError: Error | undefined;
      const transient = (cause: Error) => {
        const code = (cause as NodeJS.ErrnoException).code ?? '';
        return RETRY_ERRNOS.has(code) || cause.message === 'socket hang up' || cause instanceof TimeoutError;
      };
      const req = send(url, { method, agent: this.agentFor(url), headers, ...(options.signal ? { signal: options.signal } : {}) });
      req.setTimeout(this.timeoutMs, () => req.destroy(new TimeoutError(`no bytes moved for ${this.timeoutMs / 1000} s`)));
      req.on('error', (cause: Error) => {
        if (bodyError) return reject(bodyError);
        if (options.signal?.aborted) return reject(options.signal.reason instanceof Error ? options.signal.reason : cause);
        reject(
          new RegistryError('AG_REGISTRY_UNREACHABLE', `${what} on ${this.label} failed: ${cause.message}`, {
            cause,
            transient: transient(cause),
            hint: this.options.insecure || url.protocol === 'http:' ? 'check the address and that the registry is running' : 'check the address, that the registry is running, and its CA (--ca-file); a plain-HTTP lab registry needs --insecure-registry',
          }),
        );
      });
      req.on('response', (res) => {
        const reply = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0), url };
        if (options.stream && reply.status >= 200 && reply.status < 300) return resolve({ ...reply, stream: res });
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limit) {
            res.destroy();
            req.destroy();
            reject(new RegistryError('AG_REGISTRY_RESPONSE', `${what} on ${this.label}: the response is larger than ${limit} bytes; refused`, { status: reply.status }));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ ...reply, body: Buffer.concat(chunks) }));
        res.on('error', (cause) => reject(new RegistryError('AG_REGISTRY_UNREACHABLE', `${what} on ${this.label}: the response broke off: ${cause.message}`, { cause, transient: true })));
      });
      const body = options.body;
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        pipeline(body(), req).catch((err: Error) => {
          if (err instanceof AirgapError) bodyError ??= err;
          req.destroy(err);
        });
      }
    });
  }
}

class TimeoutError extends Error {}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Scopes of `a` with those of `b` added: actions on the same resource (`type:name`) are
 * joined, so `repository:x:pull,push` and `repository:x:pull` stay one scope.
 */
export function mergeScopes(a: string[], b: string[]): string[] {
  const actions = new Map<string, Set<string>>();
  for (const scope of [...a, ...b]) {
    const cut = scope.lastIndexOf(':');
    const resource = cut === -1 ? scope : scope.slice(0, cut);
    const set = actions.get(resource) ?? new Set<string>();
    if (cut !== -1) for (const action of scope.slice(cut + 1).split(',')) if (action) set.add(action);
    actions.set(resource, set);
  }
  return [...actions].map(([resource, set]) => (set.size ? `${resource}:${[...set].join(',')}` : resource));
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}

/** The next page of a paginated list (distribution-spec, "Listing tags": Link rel="next"). */
function nextLink(reply: RegistryReply): string | undefined {
  const link = /<([^>]+)>;\s*rel="next"/.exec(String(reply.headers.link ?? ''));
  return link?.[1];
}

/** The bytes of `source` in Buffers of exactly `size` bytes (the last one shorter). */
async function* chunksOf(source: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const data of source) {
    let chunk = data as Buffer;
    while (length + chunk.length >= size) {
      const take = size - length;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts, size);
      chunk = chunk.subarray(take);
      parts = [];
      length = 0;
    }
    if (chunk.length) {
      parts.push(chunk);
      length += chunk.length;
    }
  }
  if (length) yield Buffer.concat(parts, length);
}
