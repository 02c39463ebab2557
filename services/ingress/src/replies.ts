import { MoatError } from '@moat/runtime';

/**
 * The replies ingress gives, as MoatErrors that smtp-server sends verbatim (`responseCode`, then
 * the message). smtp-server does not advertise ENHANCEDSTATUSCODES by default and would put a
 * code of its own choosing in front of ours if it did, so the enhanced status code (RFC 3463) is
 * part of the text here.
 */
export function smtpReply(responseCode: number, enhancedStatus: string, text: string): MoatError {
  const permanent = responseCode >= 500;
  return new MoatError(permanent ? 'SMTP_PERMANENT' : 'SMTP_TRANSIENT', `${enhancedStatus} ${text}`, { responseCode, enhancedStatus, permanent });
}

export const replies = {
  /** RFC 5321 §3.6.2, RFC 3463 5.7.1: we are not a relay for this destination. */
  relayDenied: () => smtpReply(550, '5.7.1', 'Relaying denied'),
  /**
   * A message belongs to exactly one tenant. RFC 5321 §4.5.3.1.10: on 452 the client sends the
   * recipients accepted so far and retries the rest in a new transaction.
   */
  otherTenant: () => smtpReply(452, '4.5.3', 'Recipients of another organisation: send separately'),
  tooManyRecipients: () => smtpReply(452, '4.5.3', 'Too many recipients'),
  /** RFC 1870 §6.3 / RFC 3463 5.3.4. */
  tooBig: () => smtpReply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  /**
   * RFC 5321 §2.3.8 (CR and LF only as CRLF), RFC 3463 5.6.0 (other media error): a body with a
   * bare CR or LF is an SMTP smuggling attempt or would be altered on relay; the client must
   * fix it, a retry would not help. Reply text stays ASCII (RFC 5321 §4.2).
   */
  bareLineEnding: () => smtpReply(550, '5.6.0', 'Message contains bare CR or LF line endings (RFC 5321 section 2.3.8); send CRLF line endings'),
  /** Anything that kept us from keeping our promise: the client keeps the message and retries. */
  tempFail: () => smtpReply(451, '4.3.0', 'Temporary failure, please try again later'),
} as const;

export function isSmtpReply(err: unknown): err is MoatError & { responseCode: number } {
  return err instanceof MoatError && typeof err.responseCode === 'number' && (err.code === 'SMTP_PERMANENT' || err.code === 'SMTP_TRANSIENT');
}
