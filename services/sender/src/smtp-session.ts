import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SmtpReply } from '@moat/contracts';
import { localReply, parseReply } from './reply.js';

export interface SessionOptions {
  /** EHLO name (RFC 5321 §4.1.1.1). */
  ehloName: string;
  /** Source address to bind (the pool's address); undefined lets the OS choose. */
  localAddress: string | undefined;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
}

export interface SessionTarget {
  /** The IP address to connect to (already resolved: nodemailer never queries DNS here). */
  address: string;
  port: number;
  /** The route's host name, for SNI during STARTTLS; undefined when the route is an address. */
  servername: string | undefined;
}

/** Setting a session up failed (before any transaction): the delivery may try the next route. */
export class ConnectFailure extends Error {
  override readonly name = 'ConnectFailure';
  constructor(
    message: string,
    /** The server's reply when it gave one (a 4xx/5xx greeting, a refused EHLO/HELO). */
    readonly reply: SmtpReply | null,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** What one SMTP transaction decided, recipient by recipient. */
export interface TransactionReplies {
  /** The reply that decided each recipient: its RCPT reply when refused, else the MAIL/DATA reply. */
  replies: Map<string, SmtpReply>;
  /** Why the transaction broke off without a reply (connection lost, timeout), null otherwise. */
  error: string | null;
}

export interface TransactionEnvelope {
  from: string;
  to: string[];
  /** Whole message size in bytes, announced with SIZE (RFC 1870) when the server supports it. */
  size: number;
}

type NodemailerError = Error & {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: NodemailerError[];
};

/** The envelope bookkeeping nodemailer keeps on the connection (not part of its typed API). */
interface EnvelopeState {
  accepted?: unknown;
  rejectedErrors?: unknown;
}

function rejectedReplies(errors: unknown): Map<string, SmtpReply> {
  const out = new Map<string, SmtpReply>();
  if (!Array.isArray(errors)) return out;
  for (const e of errors as NodemailerError[]) {
    if (typeof e?.recipient === 'string' && typeof e.response === 'string') out.set(e.recipient, parseReply(e.response));
  }
  return out;
}

/** Does the body hold any 8-bit byte? Then MAIL FROM declares BODY=8BITMIME (RFC 6152) when offered. */
function has8bit(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) if (body[i]! >= 0x80) return true;
  return false;
}

/**
 * One SMTP session to one server, on nodemailer's SMTPConnection:
 * - bound to the pool's source address (`localAddress`), EHLO with our name, TCP_NODELAY (set by
 *   SMTPConnection on connect: commands are written in batches, Nagle would only delay them);
 * - opportunistic STARTTLS (RFC 3207): used when offered, certificate not verified (RFC 7435:
 *   opportunistic security protects against passive eavesdropping, and MTAs cannot know which
 *   name a customer's certificate carries), continued in plaintext when the server refuses the
 *   upgrade, and — when the handshake itself fails — reconnected once without TLS, as MTAs do.
 *   Absent or broken TLS never fails a delivery.
 */
export class SmtpSession {
  private ended = false;
  /** Called once when the connection ends (server closed it, error, or we closed it). */
  onEnd: (() => void) | null = null;

  private constructor(
    private readonly conn: SMTPConnection,
    /** The local address actually used. */
    readonly localAddress: string | null,
    /** `address:port` of the peer. */
    readonly remote: string,
  ) {
    conn.on('end', () => {
      this.ended = true;
      this.onEnd?.();
    });
  }

  /** True when the session was upgraded with STARTTLS. */
  get tls(): boolean {
    return this.conn.secure;
  }

  /** Still connected and able to take a command. */
  get usable(): boolean {
    return !this.ended && !this.conn.destroyed;
  }

  static async open(target: SessionTarget, opts: SessionOptions): Promise<SmtpSession> {
    try {
      return await SmtpSession.connect(target, opts, true);
    } catch (err) {
      // RFC 7435 §3: a failed opportunistic TLS handshake falls back to cleartext.
      if (err instanceof ConnectFailure && err.code === 'ETLS') return SmtpSession.connect(target, opts, false);
      throw err;
    }
  }

  private static connect(target: SessionTarget, opts: SessionOptions, tls: boolean): Promise<SmtpSession> {
    const conn = new SMTPConnection({
      host: target.address,
      port: target.port,
      servername: target.servername,
      secure: false,
      ignoreTLS: !tls,
      opportunisticTLS: true,
      tls: { rejectUnauthorized: false },
      name: opts.ehloName,
      localAddress: opts.localAddress,
      connectionTimeout: opts.connectTimeoutMs,
      greetingTimeout: opts.greetingTimeoutMs,
      socketTimeout: opts.socketTimeoutMs,
      // After QUIT, wait briefly for the server to close its side.
      socketCloseTimeout: 2_000,
      logger: false,
    });
    return new Promise<SmtpSession>((resolve, reject) => {
      let settled = false;
      const fail = (err: NodemailerError | undefined, fallback: string) => {
        if (settled) return;
        settled = true;
        // A handshake that breaks surfaces as a socket error (ESOCKET) while `upgrading` is set;
        // nodemailer only says ETLS for some of these paths. Both mean: TLS failed, not the server.
        const tlsFailed = err?.code === 'ETLS' || conn.upgrading === true;
        conn.close();
        const message = err?.message ?? fallback;
        reject(new ConnectFailure(tlsFailed ? `STARTTLS failed: ${message}` : message, typeof err?.response === 'string' ? parseReply(err.response) : null, tlsFailed ? 'ETLS' : (err?.code ?? null)));
      };
      // SMTPConnection reports most setup failures as an 'error' event, not through the
      // connect() callback; it also emits 'error' later on, so a listener must always be there.
      conn.on('error', (err: NodemailerError) => fail(err, 'connection error'));
      conn.once('end', () => fail(undefined, 'connection closed during setup'));
      conn.connect((err) => {
        if (err) return fail(err, 'connection failed');
        if (settled) return;
        settled = true;
        const socket = conn._socket;
        const localAddress = socket ? (socket.localAddress ?? null) : null;
        resolve(new SmtpSession(conn, localAddress, `${target.address}:${target.port}`));
      });
    });
  }

  /**
   * RSET (RFC 5321 §4.1.1.5) before reusing a kept connection: clears any transaction state left
   * by the previous message and proves the connection is still alive. False: do not use it.
   */
  reset(timeoutMs: number): Promise<boolean> {
    if (!this.usable) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        this.conn.removeListener('end', onEnd);
        resolve(ok);
      };
      // A connection dropped while the RSET is out never calls the reset callback.
      const onEnd = () => settle(false);
      const timer = setTimeout(() => {
        this.close();
        settle(false);
      }, timeoutMs);
      this.conn.once('end', onEnd);
      this.conn.reset((err) => settle(!err && this.usable));
    });
  }

  /**
   * One transaction: MAIL FROM, every RCPT TO, DATA, the body. The body goes through nodemailer's
   * data stream, which dot-stuffs (RFC 5321 §4.5.2) and turns any bare CR or bare LF into CRLF
   * (RFC 5321 §4.1.1.4 allows CR and LF only as CRLF; a bare one is also how SMTP smuggling
   * works). A message whose lines end in CRLF — everything Moat's ingress accepts from a
   * conforming client — therefore arrives byte for byte; one with bare line feeds arrives with
   * them as CRLF. The whole body is written in one chunk.
   * Never rejects: every way a transaction can end is turned into per-recipient replies.
   */
  send(envelope: TransactionEnvelope, body: Buffer, deadlineMs: number): Promise<TransactionReplies> {
    return new Promise<TransactionReplies>((resolve) => {
      let done = false;
      const finish = (result: TransactionReplies) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        clearTimeout(lastResort);
        resolve(result);
      };
      let lastResort: NodeJS.Timeout | undefined;
      // A bound on the whole transaction (a server trickling replies defeats the inactivity
      // timeout): break the connection; nodemailer then completes the send with an error.
      const deadline = setTimeout(() => {
        const socket = this.conn._socket;
        if (socket) socket.destroy(new Error(`transaction exceeded ${deadlineMs} ms`));
        lastResort = setTimeout(() => finish(this.repliesFor(envelope.to, undefined, `transaction exceeded ${deadlineMs} ms`)), 2_000);
      }, deadlineMs);
      const nodemailerEnvelope = { from: envelope.from, to: envelope.to, size: envelope.size, use8BitMime: has8bit(body) };
      try {
        this.conn.send(nodemailerEnvelope, body, (err, info) => {
          if (!err) {
            const dataReply = parseReply(info.response);
            const replies = rejectedReplies(info.rejectedErrors);
            for (const rcpt of envelope.to) if (!replies.has(rcpt)) replies.set(rcpt, dataReply);
            finish({ replies, error: null });
            return;
          }
          finish(this.repliesFor(envelope.to, err as NodemailerError));
        });
      } catch (err) {
        finish(this.repliesFor(envelope.to, err as NodemailerError));
      }
    });
  }

  /** Per-recipient replies of a transaction that ended with an error. */
  private repliesFor(to: string[], err: NodemailerError | undefined, fallbackError?: string): TransactionReplies {
    const replies = new Map<string, SmtpReply>();
    const serverReply = typeof err?.response === 'string' ? parseReply(err.response) : null;
    if (err && serverReply && err.command === 'MAIL FROM') {
      // A refused MAIL FROM decides every recipient; with PIPELINING the RCPTs that followed it
      // were answered "503 bad sequence", which says nothing about the recipients.
      for (const rcpt of to) replies.set(rcpt, serverReply);
      return { replies, error: null };
    }
    if (err && !serverReply && err.code === 'EMESSAGE' && err.command === 'MAIL FROM') {
      // nodemailer refuses locally when the server's advertised SIZE (RFC 1870) is smaller than
      // the message: the server would refuse it with 552 5.3.4, a permanent failure.
      for (const rcpt of to) replies.set(rcpt, localReply(err.message, '5.3.4'));
      return { replies, error: null };
    }
    if (err && !serverReply && err.code === 'EENVELOPE' && err.command === 'API') {
      // An address that cannot be written into a command (CR, LF, angle brackets) never will.
      for (const rcpt of to) replies.set(rcpt, localReply(err.message, '5.1.3'));
      return { replies, error: null };
    }
    // Recipients the server refused at RCPT keep that reply: it was final for them, whatever
    // happened to the transaction afterwards. (After a DATA failure nodemailer's error does not
    // carry them; they are on the connection's envelope state.)
    const envelopeState = (this.conn as unknown as { _envelope?: EnvelopeState | false })._envelope;
    const refused = rejectedReplies(err?.rejectedErrors ?? (envelopeState ? envelopeState.rejectedErrors : undefined));
    for (const [rcpt, reply] of refused) if (to.includes(rcpt)) replies.set(rcpt, reply);
    if (serverReply) {
      // RCPT (all refused), DATA or end-of-data refused, or 421 (server closing) at any point.
      for (const rcpt of to) if (!replies.has(rcpt)) replies.set(rcpt, serverReply);
      return { replies, error: null };
    }
    // No reply: the connection broke (or timed out) inside the transaction.
    const error = err?.message ?? fallbackError ?? 'transaction ended without a reply';
    for (const rcpt of to) if (!replies.has(rcpt)) replies.set(rcpt, localReply(error));
    return { replies, error };
  }

  /** QUIT (RFC 5321 §4.1.1.10), then close; resolves when the connection has ended (bounded). */
  quit(timeoutMs = 2_000): Promise<void> {
    if (!this.usable) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.close();
        resolve();
      }, timeoutMs);
      this.conn.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        this.conn.quit();
      } catch {
        this.close();
      }
    });
  }

  close(): void {
    this.conn.close();
  }
}
