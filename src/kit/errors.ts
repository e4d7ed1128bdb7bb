/**
 * Typed errors. Every error the CLI or the daemon reports carries a stable code (AG_…),
 * a one-sentence message and, where it helps, a hint that says what to do next.
 */

export interface ErrorOptions {
  cause?: unknown;
  /** What the operator should do next, shown after the message. */
  hint?: string;
}

/**
 * Every error code, with the HTTP status the daemon's APIs answer it with. One table, so
 * a new code needs a status and a typo does not compile. Groups: the .bin (422: the file
 * is refused), the bundle spec (400), registries (502: a registry upstream failed), the
 * daemon and its state, the console API.
 */
export const ERROR_STATUS = {
  // usage and requests
  AG_USAGE: 400,
  AG_BAD_REQUEST: 400,
  AG_ADDRESS: 400,
  AG_BAD_REFERENCE: 400,
  AG_NOT_FOUND: 404,
  AG_INTERNAL: 500,
  // the .bin: refused as it is
  AG_NOT_AIRGAP: 422,
  AG_HEADER: 422,
  AG_FORMAT: 422,
  AG_TRUNCATED: 422,
  AG_READ_FAILED: 500,
  AG_TRAILING_DATA: 422,
  AG_PAYLOAD_DIGEST: 422,
  AG_TAR_HEADER: 422,
  AG_ENTRY_TYPE: 422,
  AG_ENTRY_PATH: 422,
  AG_ENTRY_SIZE: 422,
  AG_ENTRY_DIGEST: 422,
  AG_DUPLICATE_ENTRY: 422,
  AG_TOC_MISSING: 422,
  AG_TOC_DIGEST: 422,
  AG_TOC_INVALID: 422,
  AG_TOC_MISMATCH: 422,
  AG_LAYOUT: 422,
  AG_UNSIGNED: 422,
  AG_UNKNOWN_KEY: 422,
  AG_BAD_SIGNATURE: 422,
  AG_NO_TRUSTED_KEYS: 422,
  AG_BAD_KEY: 422,
  AG_SOURCE_CHANGED: 409,
  AG_FILE_CHANGED: 409,
  // release rules
  AG_DOWNGRADE: 409,
  AG_VERSION_CONFLICT: 409,
  // the bundle spec and its sources (build side)
  AG_SPEC: 400,
  AG_SOURCE: 400,
  AG_CHART: 400,
  AG_PACK: 400,
  AG_FILES: 400,
  AG_DUPLICATE: 400,
  AG_RUNTIME: 400,
  AG_DIGEST_MISMATCH: 502,
  AG_KEY_EXISTS: 409,
  // registries
  AG_UNAUTHORIZED: 401,
  AG_REGISTRY_UNREACHABLE: 502,
  AG_REGISTRY_RESPONSE: 502,
  AG_REGISTRY_PUSH: 502,
  AG_REGISTRY_DOWN: 503,
  AG_REGISTRY_START: 500,
  AG_REGISTRY_BINARY: 500,
  // the daemon, its state and its host
  AG_NO_SPACE: 507,
  AG_IMPORT_FAILED: 500,
  AG_IMPORT_CANCELLED: 409,
  AG_STATE_DIR: 500,
  AG_UNSAFE_PERMISSIONS: 500,
  AG_DB_OPEN: 500,
  AG_DB_NEWER: 500,
  AG_DB_CORRUPT: 500,
  AG_CA_UNREADABLE: 500,
  AG_SITE_CERT: 400,
  AG_PORT_IN_USE: 500,
  AG_PORT_DENIED: 500,
  AG_DAEMON_RUNNING: 409,
  AG_DAEMON_DOWN: 503,
  AG_DAEMON_DENIED: 403,
  AG_DAEMON_PROTOCOL: 502,
  AG_DAEMON_ERROR: 500,
  // backup and restore
  AG_BACKUP_CHANGED: 409,
  AG_BACKUP_OUT: 400,
  AG_BACKUP_FORMAT: 422,
  AG_BACKUP_DAMAGED: 422,
  AG_STATE_EXISTS: 409,
  AG_BACKUP_BUSY: 409,
  AG_PASSWORD: 403,
  AG_CONFIG: 400,
  // the console API
  AG_BAD_LOGIN: 401,
  AG_TOO_MANY_LOGINS: 429,
  AG_CSRF: 403,
  AG_CROSS_SITE: 403,
  AG_UPLOAD_TOO_LARGE: 413,
  AG_UPLOAD_TYPE: 415,
  AG_UPLOAD_RANGE: 416,
  AG_UPLOAD_OFFSET: 409,
  AG_UPLOAD_LENGTH: 400,
  AG_UPLOAD_NAME: 400,
  AG_UPLOAD_INCOMPLETE: 409,
  AG_UPLOAD_BUSY: 409,
  AG_UPLOAD_STALLED: 408,
  AG_UPLOADS_OPEN: 429,
} as const satisfies Record<string, number>;

/** A stable error code (AG_…). */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** True when `text` is one of the codes of ERROR_STATUS. */
export function isErrorCode(text: unknown): text is ErrorCode {
  return typeof text === 'string' && Object.hasOwn(ERROR_STATUS, text);
}

/** `text` as an ErrorCode, or `fallback` when it is none (a code read back from JSON or the database). */
export function asErrorCode(text: unknown, fallback: ErrorCode): ErrorCode {
  return isErrorCode(text) ? text : fallback;
}

/** The HTTP status an API answers `code` with (500 for a code it does not know). */
export function httpStatusOf(code: string): number {
  return (ERROR_STATUS as Record<string, number>)[code] ?? 500;
}

/** Base class: a failure with a stable code that tools and tests can match on. */
export class AirgapError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

/** The .bin payload (header, tar, TOC, signature, OCI layout) is malformed or not trusted. */
export class PayloadError extends AirgapError {}

/** The bundle spec or one of its sources cannot be used to build a payload. */
export class BundleError extends AirgapError {}

/** A registry answered with an error or an unexpected response (OCI distribution-spec). */
export class RegistryError extends AirgapError {
  /** The registry's HTTP status, when it answered. */
  readonly status?: number;
  /** The registry's own error code (distribution-spec "Error Codes"), e.g. DIGEST_INVALID. */
  readonly registryCode?: string;
  /** A network error or timeout that the same request may not meet again. */
  readonly transient: boolean;
  /** The registry said its storage is full (507, or the OS's ENOSPC in its error detail). */
  readonly diskFull: boolean;
  constructor(code: ErrorCode, message: string, options: ErrorOptions & { status?: number; registryCode?: string; transient?: boolean; diskFull?: boolean } = {}) {
    super(code, message, options);
    if (options.status !== undefined) this.status = options.status;
    if (options.registryCode !== undefined) this.registryCode = options.registryCode;
    this.transient = options.transient === true;
    this.diskFull = options.diskFull === true;
  }
}

/** The command line is wrong: unknown flag, missing argument. Exit code 2. */
export class UsageError extends AirgapError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('AG_USAGE', message, options);
  }
}
