import { isUtf8 } from 'node:buffer';
import type { MoatError } from '@moat/runtime';
import type { LineFault } from './command-line-framer.js';
import { replies } from './replies.js';

/**
 * The commands ingress answers on port 25 (RFC 5321 §4.5.1's minimum, plus HELP and STARTTLS),
 * and AUTH on the submission ports. smtp-server has handlers for more (XCLIENT/XFORWARD need a
 * trusted proxy, WIZ/SHELL/KILL are jokes); to a client they are all unknown commands.
 */
const knownCommands = new Set(['EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'HELP', 'STARTTLS']);

/** A browser made to POST to port 25 (cross-protocol scripting): its headers would follow as commands. */
const httpRequestLine = /^(OPTIONS|GET|HEAD|POST|PUT|DELETE|TRACE|CONNECT) \S* HTTP\/\d/i;

export type CommandVerdict =
  /** Hand the line to smtp-server. */
  | { action: 'run' }
  /** Answer with the reply and read the next line; `unknown` when the command is not one we know. */
  | { action: 'refuse'; reply: MoatError; unknown: boolean }
  /** Answer with the (421) reply and close the connection. */
  | { action: 'close'; reply: MoatError };

export interface CommandContext {
  /** The transaction's MAIL FROM carried SMTPUTF8 (RFC 6531), so RCPT may be UTF-8. */
  smtpUtf8: boolean;
  maxLineBytes: number;
  /**
   * AUTH (RFC 4954) on this connection: `unknown` on the MX port (an unrecognized command, as
   * before), `needs-tls` on the submission port before STARTTLS (530 5.7.0: credentials never
   * travel in plaintext, RFC 3207 §4), `allowed` under TLS on a submission port.
   */
  auth?: 'unknown' | 'needs-tls' | 'allowed';
  /**
   * The line answers an AUTH challenge (a `334`): a base64 SASL response or `*`, not a command
   * (RFC 4954 §4). Only its framing is judged; it never counts as an unknown command.
   */
  saslResponse?: boolean;
}

/**
 * Judges one command line before smtp-server runs it: its framing (see command-line-framer.ts),
 * whether the command is one we know, and its characters. RFC 5321 commands are ASCII; RFC 6531
 * allows UTF-8 only in the addresses of MAIL (with the SMTPUTF8 parameter) and RCPT (in such a
 * transaction), and only well-formed UTF-8 (RFC 3629): anything else would reach logs, headers and
 * the customer's server as bytes no one can read the same way.
 */
export function checkCommand(line: Buffer | null, fault: LineFault | null, ctx: CommandContext): CommandVerdict {
  if (fault !== null || line === null) return { action: 'refuse', reply: faultReply(fault ?? 'bare-line-ending', ctx.maxLineBytes), unknown: false };
  if (ctx.saslResponse) return isAscii(line) ? { action: 'run' } : { action: 'refuse', reply: replies.nonAsciiCommand(), unknown: false };
  const text = line.toString('latin1');
  // The verb as smtp-server finds it (up to the first space, upper-cased), so both agree on
  // which command this is.
  const verb = text.split(' ')[0]!.toUpperCase();
  if (verb === 'AUTH' && ctx.auth === 'needs-tls') return { action: 'refuse', reply: replies.startTlsFirst(), unknown: false };
  if (verb === 'AUTH' && ctx.auth === 'allowed') return isAscii(line) ? { action: 'run' } : { action: 'refuse', reply: replies.nonAsciiCommand(), unknown: false };
  if (!knownCommands.has(verb)) {
    if (httpRequestLine.test(text)) return { action: 'close', reply: replies.httpRequest() };
    return { action: 'refuse', reply: replies.unknownCommand(), unknown: true };
  }
  if (isAscii(line)) return { action: 'run' };
  const utf8Allowed = verb === 'MAIL' ? hasSmtpUtf8Parameter(text) : verb === 'RCPT' ? ctx.smtpUtf8 : null;
  if (utf8Allowed === null) return { action: 'refuse', reply: replies.nonAsciiCommand(), unknown: false };
  if (!utf8Allowed) return { action: 'refuse', reply: replies.nonAsciiWithoutSmtpUtf8(), unknown: false };
  if (!isUtf8(line)) return { action: 'refuse', reply: replies.invalidUtf8(), unknown: false };
  return { action: 'run' };
}

function faultReply(fault: LineFault, maxLineBytes: number): MoatError {
  switch (fault) {
    case 'too-long':
      return replies.commandLineTooLong(maxLineBytes);
    case 'bare-line-ending':
      return replies.bareLineEndingInCommand();
    case 'nul':
      return replies.nulInCommand();
  }
}

function isAscii(bytes: Buffer): boolean {
  for (const b of bytes) if (b > 0x7f) return false;
  return true;
}

/** `MAIL FROM:<path> SMTPUTF8 …`: the keyword among the parameters after the path (RFC 6531 §3.4). */
function hasSmtpUtf8Parameter(text: string): boolean {
  const close = text.indexOf('>');
  const params = close === -1 ? [] : text.slice(close + 1).trim().split(/\s+/);
  return params.some((p) => p.toUpperCase() === 'SMTPUTF8');
}
