/**
 * Registry credentials from a docker `config.json` (the file `docker login`, `podman
 * login` and `skopeo login` write), as `--registry-auth FILE` takes it: `auths` entries
 * (`auth` as base64 `user:password`, `username` and `password`, or an OAuth2 refresh token
 * `identitytoken`, which goes before the others), keyed by host, host:port
 * or a URL (`https://host/v1/`, `https://host/v2/`, `http://host:port`); and credential
 * helpers (`credHelpers` per registry, `credsStore` for all), run as
 * `docker-credential-<name> get` with the registry on stdin, as docker does.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { RegistryError, UsageError } from '../kit/errors.js';
import type { Credentials } from './client.js';

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface ConfigJson {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** `https://Host:5000/v2/` → `host:5000`; Docker Hub's names → `docker.io`. */
export function registryKey(name: string): string {
  const bare = name
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return bare === 'index.docker.io' || bare === 'registry-1.docker.io' ? 'docker.io' : bare;
}

function fromEntry(entry: AuthEntry): Credentials | undefined {
  // docker login with an OAuth2 registry (ACR, Harbor with OIDC) keeps a refresh token.
  if (entry.identitytoken) return { username: entry.username || '<token>', password: '', identityToken: entry.identitytoken };
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  if (entry.auth) {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  return undefined;
}

/** Runs `docker-credential-<helper> get` for `registry`; undefined when it has nothing. Throws RegistryError when it cannot run. */
function fromHelper(helper: string, registry: string): Credentials | undefined {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) throw new UsageError(`the credential helper name '${helper}' is not a plain name`);
  let out: string;
  try {
    out = execFileSync(`docker-credential-${helper}`, ['get'], { input: registry, encoding: 'utf8', timeout: 30_000, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (cause) {
    const stdout = (cause as { stdout?: string }).stdout ?? '';
    if (/credentials not found/i.test(stdout)) return undefined;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new RegistryError('AG_UNAUTHORIZED', code === 'ENOENT' ? `the credential helper docker-credential-${helper} is not installed (config.json names it for ${registry})` : `docker-credential-${helper} get failed for ${registry}`, {
      cause,
      hint: code === 'ENOENT' ? `install docker-credential-${helper}, or give credentials another way (--username with --password-stdin)` : `run 'echo ${registry} | docker-credential-${helper} get' to see why`,
    });
  }
  let doc: { Username?: string; Secret?: string };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch (cause) {
    throw new RegistryError('AG_UNAUTHORIZED', `docker-credential-${helper} answered with something that is not JSON`, { cause });
  }
  // A helper's "<token>" user means the secret is an identity token (docker's convention).
  if (doc.Username === '<token>' && doc.Secret) return { username: '<token>', password: '', identityToken: doc.Secret };
  return doc.Username && doc.Secret ? { username: doc.Username, password: doc.Secret } : undefined;
}

/**
 * Reads a docker config.json and returns the lookup of a registry's credentials
 * (`host[:port]`; Docker Hub as `docker.io`). Order: the registry's `credHelpers` entry,
 * then its `auths` entry, then `credsStore`. Throws UsageError when the file cannot be
 * read or is not JSON; the lookup throws RegistryError when a helper cannot run.
 */
export async function loadRegistryAuth(file: string): Promise<(registry: string) => Credentials | undefined> {
  let doc: ConfigJson;
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as ConfigJson;
  } catch (cause) {
    throw new UsageError(`cannot read the registry auth file ${file} (a docker config.json)`, { cause });
  }
  const auths = new Map<string, AuthEntry>();
  for (const [name, entry] of Object.entries(doc.auths ?? {})) {
    const key = registryKey(name);
    // An exact host entry wins over a URL form of the same host.
    if (!auths.has(key) || !/^[a-z]+:\/\//i.test(name)) auths.set(key, entry);
  }
  const helpers = new Map(Object.entries(doc.credHelpers ?? {}).map(([name, helper]) => [registryKey(name), helper]));
  const cache = new Map<string, Credentials | undefined>();
  return (registry) => {
    const key = registryKey(registry);
    if (cache.has(key)) return cache.get(key);
    const helper = helpers.get(key);
    const entry = auths.get(key);
    const found = helper ? fromHelper(helper, key) : entry ? fromEntry(entry) : doc.credsStore ? fromHelper(doc.credsStore, key) : undefined;
    cache.set(key, found);
    return found;
  };
}
