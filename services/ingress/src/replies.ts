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
  /**
   * RFC 5322 §3.5 leaves NUL out of message text (only the obsolete syntax has it), RFC 2045 §2.8
   * out of 8bit data; servers behind us and the filter's parser may cut a string at it.
   */
  nulInMessage: () => smtpReply(550, '5.6.0', 'Message contains NUL bytes'),
  /** RFC 5322 §2.1.1 (998 octets) is the floor of the configured limit; servers behind us break longer lines. */
  messageLineTooLong: (maxBytes: number) => smtpReply(550, '5.6.0', `Message has a line longer than ${maxBytes} octets`),
  /** RFC 3463 5.3.4: too big for the system, like the size limit, but for the header section. */
  headerTooBig: (maxBytes: number) => smtpReply(552, '5.3.4', `Message header exceeds ${maxBytes} octets`),

  // Commands (RFC 5321 §4.2.2: 500 syntax error, command unrecognized, "including command line
  // too long"; 501 syntax error in parameters). The line is not run; the session goes on.
  commandLineTooLong: (maxBytes: number) => smtpReply(500, '5.5.2', `Line too long (more than ${maxBytes} octets)`),
  bareLineEndingInCommand: () => smtpReply(500, '5.5.2', 'Command line with a bare CR or LF (RFC 5321 section 2.3.8); end lines with CRLF'),
  nulInCommand: () => smtpReply(500, '5.5.2', 'Command line contains a NUL byte'),
  unknownCommand: () => smtpReply(500, '5.5.1', 'Command not recognized'),
  /** RFC 6531 §3.5: a non-ASCII mailbox needs SMTPUTF8 on MAIL FROM; 5.6.7 is its enhanced code. */
  nonAsciiWithoutSmtpUtf8: () => smtpReply(553, '5.6.7', 'Non-ASCII address without SMTPUTF8 (RFC 6531)'),
  invalidUtf8: () => smtpReply(501, '5.5.2', 'Command contains invalid UTF-8'),
  nonAsciiCommand: () => smtpReply(501, '5.5.2', 'Non-ASCII characters are allowed only in MAIL and RCPT with SMTPUTF8 (RFC 6531)'),

  // The session ends (RFC 5321 §3.8: 421, then the server closes). RFC 3463: 4.7.0 for a policy
  // limit, 4.4.2 ("bad connection") for time limits; both are transient, a well-behaved
  // client simply connects again.
  httpRequest: () => smtpReply(421, '4.7.0', 'HTTP requests are not accepted here, closing connection'),
  tooManyCommands: () => smtpReply(421, '4.7.0', 'Too many commands in one session, closing connection'),
  tooManyErrors: () => smtpReply(421, '4.7.0', 'Too many errors, closing connection'),
  tooManyUnknownCommands: () => smtpReply(421, '4.7.0', 'Too many unrecognized commands, closing connection'),
  tooManyConnectionsFromIp: () => smtpReply(421, '4.7.0', 'Too many connections from your IP address, try again later'),
  idleTimeout: () => smtpReply(421, '4.4.2', 'Idle timeout, closing connection'),
  commandTimeout: () => smtpReply(421, '4.4.2', 'Command line not completed in time, closing connection'),
  dataTimeout: () => smtpReply(421, '4.4.2', 'Message not completed in time, closing connection'),

  // Outbound relay (submission ports, registered outbound ranges).
  /** RFC 4954 §6: MAIL on a submission port without AUTH (and not from a registered range). */
  authRequired: () => smtpReply(530, '5.7.0', 'Authentication required'),
  /** RFC 3207 §4: AUTH (or MAIL) before STARTTLS on the submission port; credentials never travel in plaintext. */
  startTlsFirst: () => smtpReply(530, '5.7.0', 'Must issue a STARTTLS command first'),
  /** RFC 4954 §6: wrong username or password (which of the two is not said). */
  authInvalid: () => smtpReply(535, '5.7.8', 'Authentication credentials invalid'),
  /** RFC 4954 §6: the credentials could not be checked now (database or Redis away); the client retries. */
  authTempFail: () => smtpReply(454, '4.7.0', 'Temporary authentication failure, try again later'),
  /** Too many failed AUTHs from this client: the session ends (421), new ones are refused the same way until the window passes. */
  tooManyAuthFailures: () => smtpReply(421, '4.7.0', 'Too many authentication failures from your IP address, try again later'),
  /** RFC 3463 5.7.1 (delivery not authorized): an organisation relays only its own senders. */
  senderNotYours: (address: string) => smtpReply(550, '5.7.1', `Sender address <${printable(address)}> is not in a domain of your organisation`),
  /** RFC 3463 5.1.7: a sender no organisation can own (no domain, an address literal). */
  badSender: () => smtpReply(553, '5.1.7', 'Sender address is not a valid mailbox in a domain'),
  /** A registered server relaying for a sender that is not its organisation's. */
  relayDeniedForeignSender: () => smtpReply(550, '5.7.1', 'Relaying denied: the sender is not in a domain of the organisation your IP address is registered for'),
  /** RFC 3463 5.1.3 (bad destination mailbox address syntax). */
  badOutboundRecipient: (reason: string) => smtpReply(553, '5.1.3', `Recipient address not accepted for relaying (${reason})`),
  /**
   * RFC 3463 4.7.1 (delivery not authorized, transient): the tenant's outbound messages per
   * minute are used up. The client keeps the message and retries, as for any 4xx.
   */
  outboundRateLimited: (limit: number, retryAfterMs: number) =>
    smtpReply(451, '4.7.1', `Outbound rate limit of ${limit} messages per minute reached, try again in ${seconds(retryAfterMs)} seconds`),

  // SMTP-time checks (smtp-checks.ts). Temporary refusals are 4.7.x policy codes: the client
  // keeps the message and retries, which a legitimate server does and most spam software does not.
  /** RFC 3463 5.1.1 (bad destination mailbox address): the tenant's mailbox list does not have it. */
  userUnknown: (address: string) => smtpReply(550, '5.1.1', `<${printable(address)}>: Recipient address rejected: User unknown`),
  /** Postfix's wording for a DNSBL hit (RFC 3463 5.7.1), so that senders' tools recognise it. */
  dnsblListed: (ip: string, zone: string) => smtpReply(554, '5.7.1', `Service unavailable; client host [${printable(ip)}] blocked using ${printable(zone)}`),
  /** RFC 6647 §2.1: a temporary refusal that a well-behaved client retries after a delay. */
  greylisted: () => smtpReply(451, '4.7.1', 'Greylisted, please try again later'),
  /** RFC 5321 §3.8 (421 and close) with RFC 3463 4.7.0: too many new connections from this client in the window. */
  clientConnectionRate: (retryAfterMs: number) => smtpReply(421, '4.7.0', `Too many connections from your IP address, try again in ${seconds(retryAfterMs)} seconds`),
  /** RFC 3463 4.7.1 at MAIL/RCPT: too many messages (or recipients) from this client in the window. */
  clientRate: (what: 'messages' | 'recipients', retryAfterMs: number) =>
    smtpReply(451, '4.7.1', `Too many ${what} from your IP address, try again in ${seconds(retryAfterMs)} seconds`),

  /** Anything that kept us from keeping our promise: the client keeps the message and retries. */
  tempFail: () => smtpReply(451, '4.3.0', 'Temporary failure, please try again later'),
} as const;

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Reply text stays printable ASCII (RFC 5321 §4.2): an address echoed back loses anything else. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 320);
}

export function isSmtpReply(err: unknown): err is MoatError & { responseCode: number } {
  return err instanceof MoatError && typeof err.responseCode === 'number' && (err.code === 'SMTP_PERMANENT' || err.code === 'SMTP_TRANSIENT');
}
