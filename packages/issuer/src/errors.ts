/**
 * Errors the issuer answers with: a {@link ParleyError} code and message, plus the HTTP status.
 * Messages never hold a password, a code, a secret or a token.
 */
import { ParleyError, type ParleyErrorCode } from '@parley/protocol';

const STATUS: Partial<Record<ParleyErrorCode, number>> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, RATE_LIMITED: 429, USAGE: 400, INTERNAL: 500 };

/** A refusal with its HTTP status (from the code unless given). */
export class IssuerError extends ParleyError {
  readonly status: number;

  constructor(code: ParleyErrorCode, message: string, status?: number, details?: Readonly<Record<string, string | number | boolean>>) {
    super(code, message, details ? { details } : {});
    this.status = status ?? STATUS[code] ?? 400;
  }
}
