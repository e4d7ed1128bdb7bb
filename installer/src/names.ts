/**
 * Names and versions as the payload, the header and the registries accept them.
 * The sh header assigns NAME and VERSION, so these patterns also keep quotes, `$`,
 * backticks and newlines out of it.
 */

/** Bundle name: lower-case letters, digits, '.', '_', '-'; 1–64 chars, starting with a letter or digit. */
export const BUNDLE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Semantic Versioning 2.0.0 (https://semver.org), without a leading 'v'. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

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
