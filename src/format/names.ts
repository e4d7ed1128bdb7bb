/**
 * Bundle names and versions as the payload and the header accept them (repository and
 * tag grammar is OCI's: src/oci/reference.ts).
 * The sh header assigns NAME and VERSION, so these patterns also keep quotes, `$`,
 * backticks and newlines out of it.
 */

/** Bundle name: lower-case letters, digits, '.', '_', '-'; 1–64 chars, starting with a letter or digit. */
export const BUNDLE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Semantic Versioning 2.0.0 (https://semver.org), without a leading 'v'. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
