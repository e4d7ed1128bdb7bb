/**
 * Bundle names and versions as the payload and the header accept them (repository and
 * tag grammar is OCI's: src/oci/reference.ts).
 * The sh header assigns NAME and VERSION, so these patterns also keep quotes, `$`,
 * backticks and newlines out of it.
 */

/** Bundle name: lower-case letters, digits, '.', '_', '-'; 1–64 chars, starting with a letter or digit. */
export const BUNDLE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Longest version accepted, in characters: a tag's limit (a chart's or pack's version
 * becomes one), and room for the appliance's `repo/.<version>.partial-<import id>` within
 * the 255 bytes of a Linux file name.
 */
export const MAX_VERSION_LENGTH = 128;

/** Semantic Versioning 2.0.0 (https://semver.org), the grammar of semver.org's regex. */
const SEMVER_GRAMMAR =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Semantic Versioning 2.0.0, without a leading 'v', at most MAX_VERSION_LENGTH characters. */
export const SEMVER = new RegExp(`^(?=.{1,${MAX_VERSION_LENGTH}}$)${SEMVER_GRAMMAR.source.slice(1)}`);
