/**
 * Registry credentials from a docker `config.json` (the file `docker login` and
 * `skopeo login` write), as `--registry-auth FILE` takes it.
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '../kit/errors.js';
import type { Credentials } from './client.js';

/** Reads a docker config.json (`{"auths": {"host": {"auth": base64(user:pass)}}}`). */
export async function loadRegistryAuth(file: string): Promise<(registry: string) => Credentials | undefined> {
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc;
  } catch (cause) {
    throw new UsageError(`cannot read the registry auth file ${file} (a docker config.json)`, { cause });
  }
  return (registry) => {
    const names = registry === 'docker.io' ? ['docker.io', 'https://index.docker.io/v1/', 'index.docker.io'] : [registry, `https://${registry}`];
    for (const name of names) {
      const entry = doc.auths?.[name];
      if (!entry) continue;
      if (entry.username && entry.password) return { username: entry.username, password: entry.password };
      if (entry.auth) {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
    }
    return undefined;
  };
}

