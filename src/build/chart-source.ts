/**
 * Where charts come from besides a local .tgz: a classic Helm repository (its
 * `index.yaml`, then the archive it names; Helm's pkg/repo) or an OCI registry
 * (`oci://HOST/REPO:TAG`, the chart layer of the manifest Helm pushed). Either way the
 * archive lands in the build's work folder and becomes an artifact exactly as `helm push`
 * makes it (artifacts.ts chartArtifact); what was chosen is recorded as the chart's
 * `source` in the TOC.
 */
import { createWriteStream } from 'node:fs';
import { utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { BundleError } from '../kit/errors.js';
import { MEDIA_TYPE_HELM_CHART, parseManifest } from '../oci/manifest.js';
import { RegistryClient, type Credentials } from '../oci/client.js';
import { parseImageReference } from '../oci/reference.js';

/** How a build reaches chart sources: the registry options it has for images. */
export interface ChartFetchOptions {
  /** Folder the archives are written into (the build's work folder). */
  workDir: string;
  credentials?: (host: string) => Credentials | undefined;
  /** A private CA, trusted besides the system's roots for repositories, alone for registries. */
  caPem?: string;
  insecureRegistries: string[];
  signal?: AbortSignal;
  /** Idle timeout of one HTTP request, ms (default 60 s). */
  timeoutMs?: number;
}

/** A chart archive fetched for the build. */
export interface FetchedChart {
  /** The .tgz in the work folder. */
  file: string;
  /** What the TOC records: the archive's URL, or the OCI reference with its digest. */
  source: string;
  /** The version chosen (a range resolved to one version). */
  version: string;
}

/** The biggest index.yaml read (large public repositories are tens of MB). */
const MAX_INDEX_BYTES = 256 * 1024 * 1024;
/** The biggest chart archive fetched. */
const MAX_CHART_BYTES = 1024 * 1024 * 1024;
/** The legacy layer media type Helm still pulls. */
const LEGACY_CHART_LAYER = 'application/tar+gzip';

/** Refuses a URL with credentials in it: they belong in a credentials file, not bundle.yaml. */
function checkUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BundleError('AG_SPEC', `${what} '${text}' is not a URL`, { hint: 'for example https://charts.example.com' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new BundleError('AG_SPEC', `${what} '${text}' must be http:// or https://`);
  if (url.username || url.password) {
    throw new BundleError('AG_SPEC', `${what} '${url.host}' has credentials in its URL`, { hint: `remove them and put them in a --registry-auth file (a docker config.json with an entry for ${url.host})` });
  }
  return url;
}

/**
 * One GET over HTTP(S): the system's roots plus `caPem`; Basic credentials for the host
 * only, never after a redirect to another origin; up to 5 redirects; an idle timeout.
 * Resolves the response (status 200) for the caller to read. Throws BundleError AG_SOURCE.
 */
async function get(url: URL, options: ChartFetchOptions, origin = url.origin, redirects = 0): Promise<IncomingMessage> {
  const credentials = url.origin === origin ? options.credentials?.(url.host) : undefined;
  const headers: Record<string, string> = { 'user-agent': 'airgap', accept: '*/*' };
  if (credentials?.username !== undefined && credentials.password !== undefined) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = send(url, { headers, ...(url.protocol === 'https:' && options.caPem ? { ca: [...rootCertificates, options.caPem] } : {}), ...(options.signal ? { signal: options.signal } : {}) }, resolve);
    req.setTimeout(options.timeoutMs ?? 60_000, () => req.destroy(new Error(`no answer in ${Math.round((options.timeoutMs ?? 60_000) / 1000)} s`)));
    req.on('error', reject);
    req.end();
  }).catch((cause: unknown) => {
    if (options.signal?.aborted) throw cause;
    throw new BundleError('AG_SOURCE', `cannot reach ${url.origin}: ${(cause as Error).message}`, { cause, hint: 'check the URL, the network and --ca-file' });
  });
  const status = response.statusCode ?? 0;
  if ([301, 302, 303, 307, 308].includes(status) && response.headers.location) {
    response.resume();
    if (redirects >= 5) throw new BundleError('AG_SOURCE', `${url.href} redirects more than 5 times`);
    return get(new URL(response.headers.location, url), options, origin, redirects + 1);
  }
  if (status !== 200) {
    response.resume();
    const hint = status === 401 || status === 403 ? `put credentials for ${url.host} in a --registry-auth file` : status === 404 ? 'check the repository URL and the chart name' : undefined;
    throw new BundleError('AG_SOURCE', `${url.href} answered ${status}${credentials ? ` for user ${credentials.username}` : ''}`, hint ? { hint } : {});
  }
  return response;
}

/** A whole response body, at most `max` bytes. Throws BundleError AG_SOURCE. */
async function readBody(response: IncomingMessage, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).length;
    if (size > max) {
      response.destroy();
      throw new BundleError('AG_SOURCE', `${what} is larger than ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Writes a body (a response, a blob) to `file`, hashing it, failing past `max` bytes. Returns its sha256 (hex) and size. */
async function saveBody(body: Readable, file: string, max: number, what: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > max) return callback(new BundleError('AG_SOURCE', `${what} is larger than ${max} bytes`));
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(body, counter, createWriteStream(file, { mode: 0o600 }));
  return { sha256: hash.digest('hex'), size };
}

interface IndexEntry {
  version: string;
  urls: string[];
  digest?: string;
  created?: string;
}

/**
 * Picks `wanted` among the repository's versions: the exact version when listed, else
 * the newest that satisfies it as a range (Helm's constraints: `7.14.x`, `^7`, `>=1.2 <2`,
 * `>=1.2, <2`, `a || b`); pre-releases only when named.
 */
export function pickVersion(versions: string[], wanted: string): string | undefined {
  if (versions.includes(wanted)) return wanted;
  const range = semver.validRange(wanted.replaceAll(',', ' '), { loose: true });
  if (!range) return undefined;
  const candidates = versions.map((v) => ({ v, s: asSemver(v) })).filter((c): c is { v: string; s: string } => c.s !== undefined && semver.satisfies(c.s, range, { loose: true }));
  return candidates.sort((a, b) => semver.rcompare(a.s, b.s, { loose: true }))[0]?.v;
}

/** A version as Masterminds/semver reads it (`1.2` is 1.2.0, `v1` is 1.0.0), in node-semver's form; undefined when it is none. */
function asSemver(version: string): string | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+].*)?$/.exec(version);
  const full = m ? `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}` : version;
  return semver.valid(full, { loose: true }) ?? undefined;
}

/**
 * Fetches `name` at `version` (exact or a range) from the classic Helm repository at
 * `repo`: reads its index.yaml, resolves the archive's URL (relative URLs against the
 * repository), downloads it and checks the sha256 the index gives. The archive's mtime
 * becomes the entry's `created` (the chart's `created` annotation stays the same on every
 * build). Throws BundleError AG_SPEC (a URL with credentials), AG_SOURCE (unreachable,
 * refused), AG_CHART (no such chart or version, a digest that does not match).
 */
export async function fetchRepoChart(repo: string, name: string, version: string, options: ChartFetchOptions): Promise<FetchedChart> {
  const base = checkUrl(repo, 'chart repository');
  const baseDir = new URL(base.href.endsWith('/') ? base.href : `${base.href}/`);
  const indexUrl = new URL('index.yaml', baseDir);
  const text = (await readBody(await get(indexUrl, options), MAX_INDEX_BYTES, indexUrl.href)).toString('utf8');
  let index: { entries?: Record<string, unknown> };
  try {
    index = parseYaml(text, { maxAliasCount: 1000 }) as typeof index;
  } catch (cause) {
    throw new BundleError('AG_SOURCE', `${indexUrl.href} is not a Helm repository index (not YAML)`, { cause });
  }
  const raw = index?.entries?.[name];
  if (!Array.isArray(raw)) {
    throw new BundleError('AG_CHART', `${indexUrl.href} has no chart '${name}'`, { hint: `charts there: ${Object.keys(index?.entries ?? {}).slice(0, 20).join(', ') || 'none'}` });
  }
  const entries: IndexEntry[] = raw
    .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && (e as { removed?: unknown }).removed !== true)
    .map((e) => ({
      version: typeof e.version === 'string' || typeof e.version === 'number' ? String(e.version) : '',
      urls: Array.isArray(e.urls) ? e.urls.map(String) : [],
      ...(typeof e.digest === 'string' ? { digest: e.digest } : {}),
      ...(typeof e.created === 'string' ? { created: e.created } : {}),
    }));
  const chosen = pickVersion(entries.map((e) => e.version), version);
  if (!chosen) {
    const listed = entries.map((e) => e.version).sort((a, b) => {
      const [sa, sb] = [asSemver(a), asSemver(b)];
      return sa && sb ? semver.rcompare(sa, sb) : 0;
    });
    throw new BundleError('AG_CHART', `no version of ${name} in ${indexUrl.href} matches '${version}'`, { hint: `newest versions there: ${listed.slice(0, 8).join(', ') || 'none'}` });
  }
  const entry = entries.find((e) => e.version === chosen)!;
  if (!entry.urls[0]) throw new BundleError('AG_CHART', `${indexUrl.href} lists ${name} ${chosen} without a URL`);
  const url = new URL(entry.urls[0], baseDir);
  checkUrl(url.href, 'chart URL');
  const file = join(options.workDir, `chart-${name}-${chosen.replace(/[^A-Za-z0-9._-]/g, '_')}.tgz`);
  const saved = await saveBody(await get(url, options), file, MAX_CHART_BYTES, url.href);
  if (entry.digest !== undefined) {
    const wantedDigest = entry.digest.replace(/^sha256:/, '').toLowerCase();
    if (wantedDigest !== saved.sha256) {
      throw new BundleError('AG_CHART', `${url.href} does not match the digest in ${indexUrl.href} (sha256 ${saved.sha256}, the index says ${entry.digest})`, { hint: 'the repository or something between changed the archive; ask its owner, or fetch it again' });
    }
  }
  const created = entry.created ? Date.parse(entry.created) : Number.NaN;
  if (Number.isFinite(created)) await utimes(file, new Date(created), new Date(created));
  return { file, source: url.href, version: chosen };
}

/**
 * Fetches the chart archive of `oci://HOST/REPO:TAG` (or `@sha256:…`): the manifest Helm
 * pushed, its chart layer (Helm's media type, or the legacy application/tar+gzip),
 * checked against its digest. The archive's mtime becomes the manifest's
 * `org.opencontainers.image.created` when it has one. Throws BundleError AG_SPEC,
 * AG_CHART (not a chart), RegistryError.
 */
export async function fetchOciChart(reference: string, options: ChartFetchOptions): Promise<FetchedChart> {
  const ref = parseImageReference(reference.slice('oci://'.length));
  const credentials = options.credentials?.(ref.registry);
  const client = new RegistryClient({
    registry: ref.registry,
    insecure: options.insecureRegistries.includes(ref.registry) || options.insecureRegistries.includes('*'),
    ...(credentials ? { credentials } : {}),
    ...(options.caPem ? { caPem: options.caPem } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  try {
    const m = await client.getManifest(ref.repository, ref.reference);
    const parsed = parseManifest(m.bytes, m.mediaType);
    const layer = parsed.kind === 'manifest' ? parsed.manifest.layers.find((l) => l.mediaType === MEDIA_TYPE_HELM_CHART || l.mediaType === LEGACY_CHART_LAYER) : undefined;
    if (!layer) throw new BundleError('AG_CHART', `${reference} is not a Helm chart (no layer of type ${MEDIA_TYPE_HELM_CHART})`, { hint: 'images go under images:, charts under charts:' });
    if (layer.size > MAX_CHART_BYTES) throw new BundleError('AG_CHART', `${reference}: the chart layer is larger than ${MAX_CHART_BYTES} bytes`);
    const file = join(options.workDir, `chart-oci-${layer.digest.slice(7, 23)}.tgz`);
    // No more than the descriptor says: a registry cannot fill the disk before the digest check.
    const saved = await saveBody(await client.getBlob(ref.repository, layer.digest, options.signal), file, layer.size, `${reference}: the chart layer`);
    if (`sha256:${saved.sha256}` !== layer.digest) throw new BundleError('AG_CHART', `${reference}: the chart layer does not match its digest ${layer.digest}`);
    const created = parsed.kind === 'manifest' ? Date.parse(parsed.manifest.annotations?.['org.opencontainers.image.created'] ?? '') : Number.NaN;
    if (Number.isFinite(created)) await utimes(file, new Date(created), new Date(created));
    const tag = ref.reference.startsWith('sha256:') ? '' : `:${ref.reference}`;
    return { file, source: `oci://${ref.registry}/${ref.repository}${tag}@${m.digest}`, version: '' };
  } finally {
    client.close();
  }
}
