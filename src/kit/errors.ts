/**
 * Typed errors. Every error the CLI or the daemon reports carries a stable code (AG_…),
 * a one-sentence message and, where it helps, a hint that says what to do next.
 */

export interface ErrorOptions {
  cause?: unknown;
  /** What the operator should do next, shown after the message. */
  hint?: string;
}

/** Base class: a failure with a stable code that tools and tests can match on. */
export class AirgapError extends Error {
  readonly code: string;
  readonly hint?: string;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
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
  constructor(code: string, message: string, options: ErrorOptions & { status?: number; registryCode?: string; transient?: boolean } = {}) {
    super(code, message, options);
    if (options.status !== undefined) this.status = options.status;
    if (options.registryCode !== undefined) this.registryCode = options.registryCode;
    this.transient = options.transient === true;
  }
}

/** The command line is wrong: unknown flag, missing argument. Exit code 2. */
export class UsageError extends AirgapError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('AG_USAGE', message, options);
  }
}
