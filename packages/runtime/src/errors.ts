/**
 * One closed set of error codes (STYLE.md, habit 7). An error keeps its SMTP reply code on the
 * error itself (`responseCode`), never in the message text.
 */
export const errorCodes = [
  'CONFIG_INVALID',
  'DEPENDENCY_UNAVAILABLE',
  'STORE_WRITE_FAILED',
  'STORE_READ_FAILED',
  'PUBLISH_FAILED',
  'PUBLISH_UNROUTABLE',
  'PUBLISH_NACKED',
  'EVENT_INVALID',
  'HANDLER_TIMEOUT',
  'NOT_FOUND',
  'CONFLICT',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'VALIDATION_FAILED',
  'SMTP_PERMANENT',
  'SMTP_TRANSIENT',
  'DECRYPT_FAILED',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export class MoatError extends Error {
  override readonly name = 'MoatError';
  readonly code: ErrorCode;
  /** SMTP reply code to give a client, when the error reaches one. */
  readonly responseCode: number | undefined;
  readonly enhancedStatus: string | undefined;
  /** A permanent error is not retried: the message goes to parking. */
  readonly permanent: boolean;
  constructor(code: ErrorCode, message: string, opts: { responseCode?: number; enhancedStatus?: string; permanent?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.responseCode = opts.responseCode;
    this.enhancedStatus = opts.enhancedStatus;
    this.permanent = opts.permanent ?? false;
  }
}
