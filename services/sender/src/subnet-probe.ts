import net from 'node:net';
import tls from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import type { SmtpReply } from '@moat/contracts';
import type { SubnetProbeStep, TranscriptLine } from '@moat/store';
import { parseReply } from './reply.js';
import { printable, ProtocolViolation, ReplyReader, type RawReply } from './reply-reader.js';

/**
 * One subnet-check probe: does this server take mail from this source address? It walks the
 * start of a real delivery — TCP connect from the bound source address, the 220 banner, EHLO,
 * STARTTLS when offered (then EHLO again, RFC 3207 §4.2), `MAIL FROM:<>`, `RCPT TO:<postmaster@
 * domain>` — and QUITs. It never sends DATA, so no message is ever delivered (RFC 5321 §3.3: a
 * transaction without DATA delivers nothing; QUIT aborts it, §4.1.1.10). The null reverse-path
 * and postmaster (which every domain must accept, RFC 5321 §4.5.1) make the answer depend on
 * the source address and not on who we claim to be.
 *
 * Every step has a timeout (bounded by the check's deadline), every line sent and received goes
 * into the transcript, and the outcome names the step that failed with the server's reply.
 * STARTTLS is opportunistic as in real deliveries (smtp-session.ts): certificates are not
 * verified, a refused STARTTLS continues in plaintext, and a failed handshake is retried once
 * without STARTTLS (RFC 7435 §3), so a probe passes exactly when a delivery would get that far.
 */
export interface ProbeTarget {
  /** The IP address to connect to (already resolved). */
  address: string;
  port: number;
  /** The route's host name, for SNI; undefined when the route is an address. */
  servername: string | undefined;
}

export interface ProbeOptions {
  /** Source address every connection binds to. */
  localAddress: string;
  /** EHLO name (RFC 5321 §4.1.1.1). */
  ehloName: string;
  /** The RCPT TO address: postmaster@<domain>. */
  recipient: string;
  /** Bound on each step (connect, and each reply). */
  stepTimeoutMs: number;
  /** Epoch ms by which the probe must be over, whatever the step timeouts say. */
  deadline: number;
}

export type ProbeStatus = 'pass' | 'fail' | 'error';

export interface ProbeOutcome {
  /** pass: RCPT accepted; fail: the server (or the path to it) refused at `failedStep`; error: the probe could not be made from here. */
  status: ProbeStatus;
  failedStep: SubnetProbeStep | null;
  /** The reply that decided: the RCPT reply on a pass, the refusing reply on a fail (null without one). */
  reply: SmtpReply | null;
  /** Why, when no reply tells (timeout, connection refused or closed, protocol violation). */
  error: string | null;
  tls: boolean;
  /** From the start of the connect to the deciding reply (or the failure). */
  latencyMs: number;
  sourceIp: string | null;
  remoteAddress: string;
  transcript: TranscriptLine[];
}

/** Failures that are ours (the source address cannot be used), not the server's. */
const localErrorCodes = new Set(['EADDRNOTAVAIL', 'EADDRINUSE', 'EINVAL', 'EAFNOSUPPORT', 'EACCES', 'EPERM']);

/** Bounds on what one probe records. */
const maxTranscriptLines = 300;
const maxBytesRead = 64 * 1024;
const quitTimeoutMs = 2_000;

/** A step failed: carries what the outcome needs. */
class StepFailure extends Error {
  override readonly name = 'StepFailure';
  constructor(
    readonly step: SubnetProbeStep,
    message: string,
    readonly reply: SmtpReply | null,
    readonly status: 'fail' | 'error' = 'fail',
  ) {
    super(message);
  }
}

/** The TLS handshake itself broke (not a refused STARTTLS): retry the probe in plaintext. */
class HandshakeFailure extends Error {
  override readonly name = 'HandshakeFailure';
}

class Transcript {
  readonly lines: TranscriptLine[] = [];
  private readonly started = Date.now();

  add(from: TranscriptLine['from'], text: string): void {
    if (this.lines.length === maxTranscriptLines) this.lines.push({ at: this.elapsed(), from: 'note', text: `transcript truncated after ${maxTranscriptLines} lines` });
    if (this.lines.length > maxTranscriptLines) return;
    this.lines.push({ at: this.elapsed(), from, text: printable(text) });
  }

  elapsed(): number {
    return Date.now() - this.started;
  }
}

/** A line-oriented SMTP client connection, for one probe: send a command, await its reply. */
class Wire {
  private reader = new ReplyReader();
  private decoder = new StringDecoder('utf8');
  private waiter: (() => void) | null = null;
  private closedWith: string | null = null;
  private bytesRead = 0;
  /** The source address actually used (read at connect: a closed socket forgets it). */
  readonly localAddress: string | null;

  private constructor(
    private socket: net.Socket,
    private readonly transcript: Transcript,
  ) {
    this.localAddress = socket.localAddress ?? null;
    this.attach(socket);
  }

  static connect(target: ProbeTarget, opts: ProbeOptions, transcript: Transcript, timeoutMs: number): Promise<Wire> {
    return new Promise<Wire>((resolve, reject) => {
      let socket: net.Socket;
      try {
        socket = net.connect({ host: target.address, port: target.port, localAddress: opts.localAddress, noDelay: true });
      } catch (err) {
        // Node validates the addresses synchronously (a family mismatch throws here).
        reject(new StepFailure('connect', `cannot connect from ${opts.localAddress}: ${(err as Error).message}`, null, 'error'));
        return;
      }
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new StepFailure('connect', `no TCP connection within ${timeoutMs} ms (the server or a firewall dropped it)`, null));
      }, timeoutMs);
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        const local = err.code !== undefined && localErrorCodes.has(err.code);
        reject(new StepFailure('connect', local ? `the source address ${opts.localAddress} cannot be used: ${err.message}` : err.message, null, local ? 'error' : 'fail'));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        transcript.add('note', `connected from ${socket.localAddress ?? opts.localAddress} to ${target.address}:${target.port}`);
        resolve(new Wire(socket, transcript));
      });
    });
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      if (this.bytesRead > maxBytesRead) {
        this.closedWith = `the server sent more than ${maxBytesRead} bytes`;
        socket.destroy();
      } else {
        this.reader.push(this.decoder.write(chunk));
      }
      this.wake();
    });
    socket.on('error', (err: Error) => {
      this.closedWith ??= err.message;
      this.wake();
    });
    socket.on('close', () => {
      this.closedWith ??= 'the server closed the connection';
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  send(command: string): void {
    this.transcript.add('client', command);
    this.socket.write(`${command}\r\n`);
  }

  /** The next reply, within timeoutMs; a StepFailure for `step` otherwise. */
  async reply(step: SubnetProbeStep, timeoutMs: number): Promise<RawReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let reply: RawReply | null;
      try {
        reply = this.reader.next();
      } catch (err) {
        if (!(err instanceof ProtocolViolation)) throw err;
        this.transcript.add('note', `protocol violation: ${err.message}`);
        throw new StepFailure(step, `the server broke the SMTP protocol: ${err.message}`, null);
      }
      if (reply) {
        for (const line of reply.lines) this.transcript.add('server', line);
        return reply;
      }
      if (this.closedWith) {
        this.transcript.add('note', this.closedWith);
        throw new StepFailure(step, `${this.closedWith} before replying`, null);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.transcript.add('note', `no reply within ${timeoutMs} ms`);
        throw new StepFailure(step, `no reply within ${timeoutMs} ms`, null);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** STARTTLS accepted: the handshake, on the same socket; replies continue inside TLS. */
  async upgrade(servername: string | undefined, timeoutMs: number): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('error');
    plain.removeAllListeners('close');
    // Anything the server sent after its 220 and before the handshake would be plaintext
    // injected into the TLS session (CVE-2011-0411 class): it is discarded with the old reader.
    this.reader = new ReplyReader();
    this.decoder = new StringDecoder('utf8');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      // Opportunistic TLS (RFC 7435): certificates are not verified, as in real deliveries.
      const s = tls.connect({ socket: plain, servername, rejectUnauthorized: false });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new HandshakeFailure(`no TLS handshake within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(new HandshakeFailure(err.message));
      });
      s.once('secureConnect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
    });
    this.socket = secure;
    this.attach(secure);
    this.transcript.add('note', `TLS established: ${secure.getProtocol() ?? 'unknown protocol'}, ${secure.getCipher()?.name ?? 'unknown cipher'}`);
  }

  /** QUIT politely (bounded), then close whatever the server does. */
  async quit(timeoutMs: number): Promise<void> {
    if (!this.closedWith) {
      try {
        this.send('QUIT');
        // The 221 only goes into the transcript; the step name of a failure here is never used.
        await this.reply('rcpt', timeoutMs);
      } catch {
        // The verdict is already made; a server that hangs up on QUIT changes nothing.
      }
    }
    this.close();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** EHLO keywords (RFC 5321 §4.1.1.1): the first word of every line after the greeting line. */
export function ehloKeywords(reply: RawReply): Set<string> {
  return new Set(reply.lines.slice(1).map((l) => l.slice(4).trim().split(/\s+/)[0]!.toUpperCase()).filter((k) => k.length > 0));
}

const isPositive = (r: RawReply) => r.code >= 200 && r.code <= 299;
const asReply = (r: RawReply): SmtpReply => {
  const parsed = parseReply(r.lines.join('\n'));
  return { ...parsed, text: printable(parsed.text) };
};

/** One conversation; a HandshakeFailure means: try again without STARTTLS. */
async function converse(target: ProbeTarget, opts: ProbeOptions, transcript: Transcript, useTls: boolean, started: number): Promise<ProbeOutcome> {
  const stepTimeout = () => Math.max(1, Math.min(opts.stepTimeoutMs, opts.deadline - Date.now()));
  const remoteAddress = `${target.address}:${target.port}`;
  const wire = await Wire.connect(target, opts, transcript, stepTimeout());
  let secure = false;
  try {
    const banner = await wire.reply('banner', stepTimeout());
    if (!isPositive(banner)) throw new StepFailure('banner', `the server greeted with ${banner.code}`, asReply(banner));
    let keywords = await ehlo(wire, opts, stepTimeout);
    if (useTls && keywords.has('STARTTLS')) {
      wire.send('STARTTLS');
      const answer = await wire.reply('starttls', stepTimeout());
      if (answer.code === 220) {
        await wire.upgrade(target.servername, stepTimeout());
        secure = true;
        // RFC 3207 §4.2: the client MUST discard what it knew and start again with EHLO.
        keywords = await ehlo(wire, opts, stepTimeout);
      } else {
        transcript.add('note', `STARTTLS refused (${answer.code}); continuing without TLS, as deliveries do`);
      }
    }
    wire.send('MAIL FROM:<>');
    const mail = await wire.reply('mail', stepTimeout());
    if (!isPositive(mail)) throw new StepFailure('mail', `MAIL FROM:<> refused with ${mail.code}`, asReply(mail));
    wire.send(`RCPT TO:<${opts.recipient}>`);
    const rcpt = await wire.reply('rcpt', stepTimeout());
    const latencyMs = Date.now() - started;
    const verdict: ProbeOutcome = isPositive(rcpt)
      ? { status: 'pass', failedStep: null, reply: asReply(rcpt), error: null, tls: secure, latencyMs, sourceIp: wire.localAddress, remoteAddress, transcript: transcript.lines }
      : { status: 'fail', failedStep: 'rcpt', reply: asReply(rcpt), error: `RCPT TO:<${opts.recipient}> refused with ${rcpt.code}`, tls: secure, latencyMs, sourceIp: wire.localAddress, remoteAddress, transcript: transcript.lines };
    // Never DATA: end the session here (QUIT aborts the open transaction).
    await wire.quit(Math.min(quitTimeoutMs, stepTimeout()));
    return verdict;
  } catch (err) {
    if (err instanceof StepFailure) {
      await wire.quit(Math.min(quitTimeoutMs, stepTimeout()));
      return { status: err.status, failedStep: err.step, reply: err.reply, error: err.message, tls: secure, latencyMs: Date.now() - started, sourceIp: wire.localAddress, remoteAddress, transcript: transcript.lines };
    }
    wire.close();
    throw err;
  }
}

/** EHLO, or HELO when the server does not know EHLO (RFC 5321 §4.1.4: 500, 502 or 504). */
async function ehlo(wire: Wire, opts: ProbeOptions, stepTimeout: () => number): Promise<Set<string>> {
  wire.send(`EHLO ${opts.ehloName}`);
  const reply = await wire.reply('ehlo', stepTimeout());
  if (isPositive(reply)) return ehloKeywords(reply);
  if (reply.code === 500 || reply.code === 502 || reply.code === 504) {
    wire.send(`HELO ${opts.ehloName}`);
    const helo = await wire.reply('ehlo', stepTimeout());
    if (isPositive(helo)) return new Set();
    throw new StepFailure('ehlo', `HELO refused with ${helo.code}`, asReply(helo));
  }
  throw new StepFailure('ehlo', `EHLO refused with ${reply.code}`, asReply(reply));
}

/** Command arguments we write must not be able to smuggle a second command (CR, LF, spaces). */
const safeArgument = /^[\x21-\x7e]{1,320}$/;

/**
 * Probes one server address from `opts.localAddress`. Never rejects: every way a probe can end is
 * an outcome (a pass, a fail at a step, or an error on our side).
 */
export async function probeSmtp(target: ProbeTarget, opts: ProbeOptions): Promise<ProbeOutcome> {
  const transcript = new Transcript();
  const started = Date.now();
  const remoteAddress = `${target.address}:${target.port}`;
  const error = (step: SubnetProbeStep, message: string): ProbeOutcome => {
    transcript.add('note', message);
    return { status: 'error', failedStep: step, reply: null, error: message, tls: false, latencyMs: Date.now() - started, sourceIp: null, remoteAddress, transcript: transcript.lines };
  };
  if (!safeArgument.test(opts.ehloName) || !safeArgument.test(opts.recipient)) return error('ehlo', 'the EHLO name or the recipient contains characters that cannot be sent in a command');
  if (Date.now() >= opts.deadline) return error('connect', 'the check’s deadline passed before the probe could start');
  try {
    return await converse(target, opts, transcript, true, started);
  } catch (err) {
    if (err instanceof HandshakeFailure) {
      transcript.add('note', `TLS handshake failed (${err.message}); probing again without STARTTLS, as deliveries do (RFC 7435)`);
      try {
        return await converse(target, opts, transcript, false, started);
      } catch (again) {
        return unexpected(again);
      }
    }
    return unexpected(err);
  }

  function unexpected(err: unknown): ProbeOutcome {
    if (err instanceof StepFailure) {
      transcript.add('note', err.message);
      return { status: err.status, failedStep: err.step, reply: err.reply, error: err.message, tls: false, latencyMs: Date.now() - started, sourceIp: err.status === 'error' ? null : opts.localAddress, remoteAddress, transcript: transcript.lines };
    }
    // A bug of ours, not the server's: an error, never a pass or a fail.
    return error('connect', `probe failed unexpectedly: ${(err as Error).message}`);
  }
}
