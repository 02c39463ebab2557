import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { Logger, MoatError } from '@moat/runtime';
import { checkCommand } from './command-check.js';
import { CommandLineFramer, type FramedLine, type LineFault } from './command-line-framer.js';
import { replies } from './replies.js';
import { SessionCounters } from './session-counters.js';
import type { SessionLimits } from './smtp-limits.js';

type Callback = (err?: Error | null) => void;
type Deadline = 'command' | 'data';

const CRLF = Buffer.from('\r\n');

/** How many lines in a row are handed over without yielding (smtp-server's own parser uses 100 too). */
const linesPerTurn = 100;

/**
 * smtp-server with Moat's session limits. smtp-server 3.21 has no hooks for what they need (the
 * raw bytes of a command line before it is split at a bare LF, every reply sent, its timers), so
 * this is the one place that extends its connection and parser classes; their members are typed
 * in the package (pinned exactly), so a change there breaks the build rather than the limits.
 * What it adds:
 * - every command line is framed by CommandLineFramer and judged by checkCommand before
 *   smtp-server sees it, one line at a time and in order (a refusal is answered exactly where the
 *   command's own reply would be, also when pipelined);
 * - counters per session (commands, unknown commands, 5xx replies) that end it with 421;
 * - a deadline per command line and one for the whole DATA phase, besides smtp-server's idle
 *   timeout (which any received byte resets, so it alone cannot stop a client that drips);
 * - its replies carry RFC 3463 enhanced codes.
 */
export class GuardedSmtpServer extends SMTPServer {
  readonly limits: SessionLimits;
  readonly log: Logger;
  /**
   * AUTH is offered (submission ports), and only under TLS: not advertised in EHLO and answered
   * 530 5.7.0 before STARTTLS (RFC 3207 §4, as Postfix's smtpd_tls_auth_only). False on the MX
   * port, where AUTH stays an unrecognized command.
   */
  readonly authUnderTls: boolean;

  constructor(limits: SessionLimits, log: Logger, options: SMTPServerOptions, authUnderTls = false) {
    // smtp-server's own line limit never triggers (the framer passes only lines within ours);
    // its socket timeout is the idle timeout.
    super({ ...options, socketTimeout: limits.idleTimeoutMs, maxCommandLength: limits.maxCommandLineBytes });
    this.limits = limits;
    this.log = log;
    this.authUnderTls = authUnderTls;
  }

  /** smtp-server's connect(), with our connection class. */
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new GuardedConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
  }
}

/** An enhanced status code (RFC 3463) at the start of a reply text: `5.7.1 …`. */
const leadingEnhancedCode = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

/**
 * The `context` smtp-server gets for a reply: false (add no enhanced status code) when the text
 * carries its own — every reply of ours does (replies.ts) — and for the greeting (RFC 2034 §3:
 * not in the 220 banner); otherwise smtp-server's, so that its own replies (503 bad sequence,
 * 421 too many clients, 552 for MAIL FROM SIZE=…) carry one too, as EHLO promises.
 */
export function enhancedContext(code: number, data: string | string[] | null | undefined, context: string | false | undefined): string | false | undefined {
  const first = Array.isArray(data) ? data[0] : data;
  if (code === 220 || code === 354) return false;
  if (typeof first === 'string' && leadingEnhancedCode.test(first)) return false;
  return context;
}

/**
 * smtp-server's mapping picks a code from the reply code alone; for three of its own replies that
 * code would mislead: the shutdown and the client limit are not a dropped connection (4.4.2) but
 * a system not accepting mail (RFC 3463 4.3.2) and a policy limit (4.7.0), and MAIL FROM SIZE=
 * over the limit is a message too big for the system (5.3.4), not a full mailbox (5.2.2).
 */
export function withOwnCode(code: number, text: string): string {
  if (leadingEnhancedCode.test(text)) return text;
  if (code === 421 && /shutting down/i.test(text)) return `4.3.2 ${text}`;
  if (code === 421 && /too many connected clients/i.test(text)) return `4.7.0 ${text}`;
  if (code === 552 && /maximum message size/i.test(text)) return `5.3.4 ${text}`;
  return text;
}

class GuardedConnection extends SMTPConnection {
  // NB: smtp-server's constructor calls _createParser() before these fields exist; it only
  // needs the server's limits.
  private readonly counters: SessionCounters;
  /** smtp-server's idle timeout is answering (its 421 gets our text). */
  private timingOut = false;

  constructor(server: GuardedSmtpServer, socket: net.Socket | tls.TLSSocket, options?: SMTPConnectionOptions | null) {
    super(server, socket, options);
    this.counters = new SessionCounters(server.limits);
  }

  private get guard(): GuardedSmtpServer {
    return this._server as GuardedSmtpServer;
  }

  override _createParser(): SMTPStream {
    // STARTTLS retires the plaintext parser and makes a new one: its timers go with it.
    if (this._parser instanceof GuardedSmtpStream) this._parser.dispose();
    const parser = new GuardedSmtpStream(this.guard.limits, (deadline) => this.onDeadline(deadline));
    // As smtp-server wires its own parser.
    parser.oncommand = (command: Buffer, callback?: () => void) => this._onCommand(command, callback);
    parser.on('error', (err: Error) => this.send(421, `Error: ${err.message}`));
    return parser;
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    const fault = this._parser instanceof GuardedSmtpStream ? this._parser.lineFault : null;
    // smtp-server's own gates come first, unchanged: a line read during the TLS handshake is
    // dropped unanswered (STARTTLS injection, RFC 3207 §4.2), one before the greeting or while
    // shutting down gets its 421. A refused line reaches them as an empty line.
    if (this._upgrading || this._server._closeTimeout || !this._ready) return super._onCommand(command, callback);
    if (!this.counters.command()) return this.endSession(replies.tooManyCommands(), 'too many commands');
    const saslResponse = typeof this._nextHandler === 'function';
    const verdict = checkCommand(fault === null ? command : null, fault, {
      smtpUtf8: this.session.envelope?.smtpUtf8 === true,
      maxLineBytes: this.guard.limits.maxCommandLineBytes,
      auth: !this.guard.authUnderTls ? 'unknown' : this.secure ? 'allowed' : 'needs-tls',
      saslResponse,
    });
    // A refused answer to an AUTH challenge ends that exchange (smtp-server would otherwise take
    // the next command line as the answer).
    if (saslResponse && verdict.action !== 'run') this._nextHandler = false;
    if (verdict.action === 'run') return super._onCommand(command, callback);
    if (verdict.action === 'close') return this.endSession(verdict.reply, 'not an SMTP client');
    if (verdict.unknown && !this.counters.unknownCommand()) return this.endSession(replies.tooManyUnknownCommands(), 'too many unknown commands');
    this.reply(verdict.reply);
    if (this._closing) return;
    // As smtp-server answers its own refusals: the next line once the reply is flushed.
    const next = callback ?? (() => undefined);
    setImmediate(() => this._whenWritable(next));
  }

  /** AUTH exists only under TLS: before it, EHLO does not advertise it (and command-check.ts answers it 530). */
  override _isSupported(command: string): boolean {
    if (!this.secure && command.trim().toUpperCase() === 'AUTH') return false;
    return super._isSupported(command);
  }

  /** Every reply passes here: the idle timeout's gets our text, and 5xx replies are counted. */
  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    // smtp-server's non-standard 538 for AUTH before STARTTLS is RFC 3207's 530 (command-check.ts
    // answers such an AUTH first; this keeps smtp-server's own gate from ever saying 538).
    if (code === 538) {
      code = 530;
      data = replies.startTlsFirst().message;
    }
    if (this.timingOut && code === 421) {
      this.guard.log.info({ client: this.remoteAddress, why: 'idle timeout' }, 'smtp session ended by a limit');
      data = replies.idleTimeout().message;
    }
    if (typeof data === 'string') data = withOwnCode(code, data);
    super.send(code, data, enhancedContext(code, data, context));
    if (code >= 500 && this._ready && !this._closing && this.counters.errorReply()) this.endSession(replies.tooManyErrors(), 'too many errors');
  }

  override _onTimeout(): void {
    this.timingOut = true;
    try {
      super._onTimeout();
    } finally {
      this.timingOut = false;
    }
  }

  override close(): void {
    super.close();
    if (this._parser instanceof GuardedSmtpStream) this._parser.dispose();
  }

  override _onClose(): void {
    const parser = this._parser;
    super._onClose();
    if (parser instanceof GuardedSmtpStream) parser.dispose();
  }

  private onDeadline(deadline: Deadline): void {
    if (this._closing || this._closed) return;
    if (deadline === 'command') this.endSession(replies.commandTimeout(), 'command line not completed in time');
    else this.endSession(replies.dataTimeout(), 'message not completed in time');
  }

  /** 421 and close (smtp-server closes the connection after any 421 it sends). */
  private endSession(reply: MoatError, why: string): void {
    this.guard.log.info({ client: this.remoteAddress, why, reply: reply.message }, 'smtp session ended by a limit');
    this.reply(reply);
  }

  private reply(reply: MoatError): void {
    this.send(reply.responseCode ?? 451, reply.message);
  }
}

/**
 * smtp-server's parser, fed one framed command line at a time. In command mode the bytes go
 * through CommandLineFramer; a line is handed to smtp-server only after the previous one was
 * answered, so what follows DATA in the same packet is read as message data, exactly as
 * smtp-server does. A refused line is handed over as an empty line with `lineFault` set, which
 * GuardedConnection reads while smtp-server dispatches it (synchronously, within the write).
 */
class GuardedSmtpStream extends SMTPStream {
  lineFault: LineFault | null = null;
  private readonly framer: CommandLineFramer;
  private lineTimer: NodeJS.Timeout | undefined;
  private dataTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly limits: SessionLimits,
    private readonly onDeadline: (deadline: Deadline) => void,
  ) {
    super({ maxCommandLength: limits.maxCommandLineBytes });
    this.framer = new CommandLineFramer(limits.maxCommandLineBytes);
  }

  override _write(chunk: Buffer, encoding: BufferEncoding | 'buffer', next: Callback): void {
    if (this._dataMode || this.isClosed || chunk.length === 0) return super._write(chunk, encoding, next);
    this.readCommands(chunk, next);
  }

  override startDataMode(maxBytes?: number | string | null): ReturnType<SMTPStream['startDataMode']> {
    const stream = super.startDataMode(maxBytes);
    this.dataTimer = this.deadline('data', this.limits.dataTimeoutMs);
    return stream;
  }

  override _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: Callback): void {
    clearTimeout(this.dataTimer);
    this.dataTimer = undefined;
    super._endDataMode(chunk, remainder, callback);
  }

  /** Stops the deadlines (the connection closed or the parser was retired). */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.lineTimer);
    clearTimeout(this.dataTimer);
    this.lineTimer = this.dataTimer = undefined;
  }

  private readCommands(chunk: Buffer, next: Callback): void {
    let offset = 0;
    let running = false;
    let resumed = false;
    let inARow = 0;
    // A loop rather than recursion: smtp-server may answer a line synchronously (NOOP), and a
    // packet of pipelined lines must not grow the stack.
    const loop = (): void => {
      if (running) {
        resumed = true;
        return;
      }
      running = true;
      try {
        for (;;) {
          resumed = false;
          if (this.isClosed) return next();
          // DATA was accepted: the rest of the packet is message data.
          if (this._dataMode) return offset < chunk.length ? this._write(chunk.subarray(offset), 'buffer', next) : next();
          const framed = this.framer.next(chunk, offset);
          if (framed === null) {
            this.watchLine();
            return next();
          }
          offset = framed.end;
          clearTimeout(this.lineTimer);
          this.lineTimer = undefined;
          this.hand(framed.framed, (err) => (err ? next(err) : loop()));
          // Still being answered: smtp-server's callback goes on with the loop.
          if (!resumed) return;
          if (++inARow >= linesPerTurn) {
            inARow = 0;
            setImmediate(loop);
            return;
          }
        }
      } finally {
        running = false;
      }
    };
    loop();
  }

  private hand(framed: FramedLine, callback: Callback): void {
    this.lineFault = framed.fault;
    try {
      super._write(framed.fault === null ? Buffer.concat([framed.line, CRLF]) : CRLF, 'buffer', callback);
    } finally {
      this.lineFault = null;
    }
  }

  /** A command line has begun: it must be complete within the idle timeout (one record, one deadline). */
  private watchLine(): void {
    if (this.framer.midLine && this.lineTimer === undefined) this.lineTimer = this.deadline('command', this.limits.idleTimeoutMs);
  }

  private deadline(deadline: Deadline, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      if (!this.disposed && !this.isClosed) this.onDeadline(deadline);
    }, ms);
    // A session never keeps the process alive on its own.
    timer.unref();
    return timer;
  }
}
