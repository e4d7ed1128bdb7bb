/**
 * Pushing to an OCI distribution registry (OCI distribution-spec v1.1, "Push"): blob
 * existence checks, cross-repository mounts, monolithic uploads (POST then PUT) streamed
 * from the caller, manifests by digest and by tag. Basic auth on a keep-alive HTTPS agent
 * that trusts the given CA, so a bulk import pays for one TLS handshake per socket.
 *
 * {@link PushTarget} is the narrow interface the importer uses; the bundled registries
 * and, later, an external registry (Harbor, Zot, …) implement it.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, request } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirgapError, RegistryError } from '../../kit/errors.js';
import type { Credentials } from '../../oci/client.js';
import { MANIFEST_ACCEPT } from '../../oci/manifest.js';

export interface PushTarget {
  /** For messages: `images registry (https://10.0.0.5:5000)`. */
  readonly label: string;
  /** True when `repository` already has the blob (HEAD /v2/<name>/blobs/<digest>). */
  hasBlob(repository: string, digest: string): Promise<boolean>;
  /** Mounts a blob from `from` of the same registry; false when the registry uploads instead. */
  mountBlob(repository: string, digest: string, from: string): Promise<boolean>;
  /** Uploads `size` bytes from `body()` as `digest`; the registry verifies the digest. */
  uploadBlob(repository: string, digest: string, size: number, body: () => Readable, signal?: AbortSignal): Promise<void>;
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

export interface HttpsRegistryOptions {
  /** `https://host:port` */
  url: string;
  /** PEM of the CA that signed the registry's certificate. */
  caPem: string;
  credentials: Credentials;
  label: string;
  /** Parallel sockets (default 8). */
  maxSockets?: number;
}

interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A registry over HTTPS with basic auth: the bundled docker-registry, or any distribution-spec registry. */
export class HttpsRegistry implements PushTarget {
  readonly label: string;
  private readonly agent: Agent;
  private readonly base: URL;
  private readonly authorization: string;

  constructor(options: HttpsRegistryOptions) {
    this.label = options.label;
    this.base = new URL(options.url);
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 8, ca: options.caPem });
    this.authorization = `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string, options: { headers?: Record<string, string | number>; body?: Buffer | (() => Readable); signal?: AbortSignal } = {}): Promise<Response> {
    const url = new URL(path, this.base);
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        agent: this.agent,
        headers: { authorization: this.authorization, 'user-agent': 'airgap-importer', ...options.headers },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= 1 << 20) chunks.push(chunk); // error bodies and manifests; never blobs
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      // An error of the body stream (a damaged .bin) is the cause, not the request it broke.
      let bodyError: Error | undefined;
      req.on('error', (cause) =>
        reject(bodyError ?? new RegistryError('AG_REGISTRY_UNREACHABLE', `${method} ${url.pathname} on the ${this.label} failed: ${cause.message}`, { cause, hint: "check 'airgap status'" })),
      );
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

  private fail(what: string, res: Response): never {
    let detail = '';
    try {
      const errors = (JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> }).errors ?? [];
      detail = errors.map((e) => `${e.code ?? ''} ${e.message ?? ''}`.trim()).join('; ');
    } catch {
      detail = res.body.toString('utf8').slice(0, 200);
    }
    const hint =
      res.status === 401 ? 'the registry refused the credentials; check its htpasswd' :
      res.status === 507 || /no space/i.test(detail) ? 'the registry volume is full; free space and import again' :
      undefined;
    throw new RegistryError('AG_REGISTRY_PUSH', `${what} on the ${this.label}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`, { status: res.status, ...(hint ? { hint } : {}) });
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    this.fail(`HEAD blob ${digest} in ${repository}`, res);
  }

  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const res = await this.send('POST', `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, { headers: { 'content-length': 0 } });
    if (res.status === 201) return true;
    if (res.status === 202) {
      // The registry opened an upload session instead; cancel it, the caller uploads.
      const location = res.headers.location;
      if (location) await this.send('DELETE', location).catch(() => undefined);
      return false;
    }
    this.fail(`mount of ${digest} from ${from} into ${repository}`, res);
  }

  async uploadBlob(repository: string, digest: string, size: number, body: () => Readable, signal?: AbortSignal): Promise<void> {
    const start = await this.send('POST', `/v2/${repository}/blobs/uploads/`, { headers: { 'content-length': 0 }, ...(signal ? { signal } : {}) });
    if (start.status !== 202 || !start.headers.location) this.fail(`start of an upload to ${repository}`, start);
    const location = new URL(start.headers.location, this.base);
    location.searchParams.set('digest', digest);
    const put = await this.send('PUT', `${location.pathname}${location.search}`, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': size },
      body,
      ...(signal ? { signal } : {}),
    });
    if (put.status !== 201) this.fail(`upload of ${digest} (${size} bytes) to ${repository}`, put);
  }

  async hasManifest(repository: string, digest: string): Promise<boolean> {
    // distribution answers 404 to OCI manifests unless their media type is accepted.
    const res = await this.send('HEAD', `/v2/${repository}/manifests/${digest}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    this.fail(`HEAD manifest ${digest} in ${repository}`, res);
  }

  async tagDigest(repository: string, tag: string): Promise<string | undefined> {
    const res = await this.send('HEAD', `/v2/${repository}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404) return undefined;
    if (res.status !== 200) this.fail(`HEAD ${repository}:${tag}`, res);
    return res.headers['docker-content-digest'] as string | undefined;
  }

  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, { headers: { 'content-type': mediaType, 'content-length': bytes.length }, body: bytes });
    if (res.status !== 201) this.fail(`PUT manifest ${repository}:${reference}`, res);
    return (res.headers['docker-content-digest'] as string | undefined) ?? '';
  }

  async retag(repository: string, tag: string, digest: string): Promise<void> {
    const res = await this.send('GET', `/v2/${repository}/manifests/${digest}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status !== 200) this.fail(`GET manifest ${digest} of ${repository}`, res);
    await this.putManifest(repository, tag, String(res.headers['content-type']), res.body);
  }

  async listTags(repository: string): Promise<string[]> {
    const res = await this.send('GET', `/v2/${repository}/tags/list`);
    if (res.status === 404) return [];
    if (res.status !== 200) this.fail(`tags of ${repository}`, res);
    return (JSON.parse(res.body.toString('utf8')) as { tags?: string[] | null }).tags ?? [];
  }

  async catalog(): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=1000';
    while (path) {
      const res = await this.send('GET', path);
      if (res.status !== 200) this.fail('catalog', res);
      out.push(...((JSON.parse(res.body.toString('utf8')) as { repositories?: string[] }).repositories ?? []));
      const link = /<([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''));
      path = link?.[1];
    }
    return out;
  }
}
