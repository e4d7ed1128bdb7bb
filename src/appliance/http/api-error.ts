/** The error the console API throws when an answer needs a status the error alone does not give. */
import { AirgapError, type ErrorCode } from '../../kit/errors.js';

/** An error with its HTTP status, turned into `{code, message, hint}` by the error handler. */
export class ApiError extends AirgapError {
  constructor(readonly statusCode: number, code: ErrorCode, message: string, hint?: string) {
    super(code, message, hint ? { hint } : {});
  }
}
