/**
 * Repository, tag and image-reference grammar (OCI distribution-spec, "Pulling manifests":
 * <name> and <reference>; docker/skopeo reference rules for `docker://` sources).
 */
import { RegistryError } from '../kit/errors.js';

/** Repository name (OCI distribution-spec, "Pulling manifests": <name>). */
export const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Tag (OCI distribution-spec, "Pulling manifests": <reference> as a tag). */
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Splits `repository:tag` (the tag is after the last ':' that follows the last '/'). */
export function splitTarget(target: string): { repository: string; tag: string } | undefined {
  const slash = target.lastIndexOf('/');
  const colon = target.lastIndexOf(':');
  if (colon <= slash) return undefined;
  const repository = target.slice(0, colon);
  const tag = target.slice(colon + 1);
  if (!REPOSITORY.test(repository) || repository.length > 255 || !TAG.test(tag)) return undefined;
  return { repository, tag };
}

/** Returns why `target` is not a valid `repository:tag`, or undefined. */
export function targetProblem(target: string): string | undefined {
  return splitTarget(target) ? undefined : `'${target}' is not a valid repository:tag (lower-case repository path, then ':' and a tag)`;
}

/** A parsed `docker://` reference. */
export interface ImageReference {
  registry: string;
  repository: string;
  /** A tag or a `sha256:` digest. */
  reference: string;
}

export const DOCKER_HUB = 'docker.io';

/**
 * Parses `HOST[:PORT]/REPO[:TAG|@DIGEST]` the way docker and skopeo do: a first component
 * with a '.' or ':' or `localhost` is a registry, otherwise it is Docker Hub (and a
 * one-component name gets `library/`). The tag defaults to `latest`.
 * Throws RegistryError AG_BAD_REFERENCE.
 */
export function parseImageReference(text: string): ImageReference {
  let rest = text;
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at !== -1) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(reference)) throw new RegistryError('AG_BAD_REFERENCE', `'${text}' has an invalid digest`);
  } else {
    const slash = rest.lastIndexOf('/');
    const colon = rest.lastIndexOf(':');
    if (colon > slash) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  let registry = DOCKER_HUB;
  const first = rest.split('/')[0]!;
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(first.length + 1);
  }
  if (registry === DOCKER_HUB && !rest.includes('/')) rest = `library/${rest}`;
  if (!REPOSITORY.test(rest)) throw new RegistryError('AG_BAD_REFERENCE', `'${text}' has an invalid repository name '${rest}'`);
  return { registry, repository: rest, reference };
}
