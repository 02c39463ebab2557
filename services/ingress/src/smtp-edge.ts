import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { messageAcceptedPayload, type MessageAcceptedPayload } from '@moat/contracts';
import { MoatError, uuidFrom, type Logger } from '@moat/runtime';
import type { AuthenticatedSmtpUser } from '@moat/store';
import { clientKey, ConnectionsPerClient } from './client-connections.js';
import { isExemptAddress, type ClientRateLimits } from './client-rate-limits.js';
import type { Dnsbl, DnsblResult } from './dnsbl.js';
import { GuardedSmtpServer } from './guarded-smtp-server.js';
import { collectMessage, type MessageRefusal } from './message-collector.js';
import { commitMessage, type IntakeDeps } from './message-intake.js';
import { decideOutboundRecipient, decideSender, parseSender, type ListenerKind, type SenderDecision } from './outbound-policy.js';
import type { OutboundRelay } from './outbound-relay.js';
import { buildReceivedHeader } from './received-header.js';
import { classifyRecipient } from './recipient-address.js';
import type { RecipientDecision, RecipientPolicy, TransactionSoFar } from './recipient-policy.js';
import type { RejectionTracker } from './rejection-tracker.js';
import type { InboundChecks } from './smtp-checks.js';
import { isSmtpReply, replies } from './replies.js';
import { defaultSmtpLimits, type SmtpLimits } from './smtp-limits.js';
import type { TlsCredentials } from './tls-credentials.js';

export interface SmtpEdgeOptions {
  /**
   * `mx`: the MX port (inbound mail; registered outbound ranges may relay; no AUTH).
   * `submission`: a submission port (AUTH under TLS, or a registered range; nothing else).
   */
  listener: ListenerKind;
  /** TLS from the first byte (RFC 8314 §3.3: submissions, port 465); else STARTTLS is offered. */
  implicitTls?: boolean;
  hostname: string;
  maxMessageBytes: number;
  /** Concurrent connections overall (smtp-server answers the one over with 421). */
  maxClients: number;
  /** The other limits (smtp-limits.ts); what is left out has its production default. */
  limits?: Partial<SmtpLimits>;
  closeTimeoutMs: number;
  intakeTimeoutMs: number;
  tls: TlsCredentials;
  policy: RecipientPolicy;
  /** Who may relay, and the outbound limits (outbound-relay.ts). */
  relay: OutboundRelay;
  /** Recipients per message (outbound; the inbound policy has its own). */
  maxRecipients: number;
  /** The client's confirmed name, or null (never rejects). */
  clientName: (ip: string) => Promise<string | null>;
  intake: IntakeDeps;
  /** The SMTP-time checks of inbound mail (README "SMTP-time checks"); left out: the recipient policy alone. */
  checks?: SmtpCheckDeps;
  log: Logger;
}

export interface SmtpCheckDeps {
  inbound: InboundChecks;
  dnsbl: Dnsbl;
  /** null: per-client rate limits off. */
  rateLimits: ClientRateLimits | null;
  /** MOAT_INGRESS_EXEMPT_CIDRS. */
  exemptCidrs: readonly string[];
  rejections: RejectionTracker;
}

const skipped: Promise<DnsblResult> = Promise.resolve({ result: 'skip' });

/** What ingress knows about one connection beyond smtp-server's session. */
interface ConnectionState {
  clientName: Promise<string | null>;
  tls: { protocol: string; cipher: string } | null;
  /** Tenant fixed by the first accepted recipient of the current transaction. */
  tenantId: string | null;
  /** The key this connection is counted under in ConnectionsPerClient; null when not counted. */
  countedAs: string | null;
  /** The tenant whose registered outbound range holds the client's address; 'error' when the lookup failed. */
  clientTenant: Promise<string | null | 'error'>;
  /** The credential of a successful AUTH. */
  auth: AuthenticatedSmtpUser | null;
  /** What MAIL FROM decided for the current transaction (inbound, or outbound for a tenant). */
  tx: Exclude<SenderDecision, { direction: 'refused' }> | null;
  /** An exempt range (MOAT_INGRESS_EXEMPT_CIDRS) or a tenant's registered outbound range. */
  exempt: Promise<boolean>;
  /** The DNSBL lookup, started at connect on the MX port (skip elsewhere, and for exempt clients). */
  dnsbl: Promise<DnsblResult>;
  /** Per transaction (reset by MAIL FROM): the id its SMTP-time refusals are tracked under… */
  transactionId: string;
  /** …whether the message was counted against the client's rate limit yet… */
  messageCounted: boolean;
  /** …and when its first recipient was refused (the tracked message's receivedAt). */
  firstRefusalAt: Date | null;
}

const payloadBeforeStore = messageAcceptedPayload.omit({ store: true });

/**
 * The SMTP listener: recipient policy at RCPT time, and at DATA the durability promise — 250 only
 * once the body is stored and message.accepted is confirmed, 451 for anything that went wrong
 * before that, and always an answer.
 */
export class SmtpEdge {
  private readonly server: GuardedSmtpServer;
  private readonly connections = new WeakMap<SMTPServerSession, ConnectionState>();
  private readonly limits: SmtpLimits;
  private readonly perClient: ConnectionsPerClient;
  /** Data handlers and commits still running: stop() waits for them before closing the stores. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly opts: SmtpEdgeOptions) {
    const limits = { ...defaultSmtpLimits, ...opts.limits };
    this.limits = limits;
    this.perClient = new ConnectionsPerClient(limits.maxClientsPerIp);
    const submission = opts.listener === 'submission';
    this.server = new GuardedSmtpServer(limits, opts.log, {
      name: opts.hostname,
      banner: 'Moat',
      key: opts.tls.key,
      cert: opts.tls.cert,
      secure: opts.implicitTls === true,
      // The MX port never authenticates: AUTH is a submission port's (RFC 6409), offered only under TLS.
      disabledCommands: submission ? [] : ['AUTH'],
      authMethods: ['PLAIN', 'LOGIN'],
      // Required on the submission ports, but checked at MAIL FROM (outbound-policy.ts), where a
      // registered range may go without it; smtp-server's own gate would cut such clients off.
      authOptional: true,
      // smtp-server would ask the machine's resolver; we ask ours (createResolver), bounded.
      disableReverseLookup: true,
      // RFC 1870: advertised in EHLO and checked against MAIL FROM SIZE=; DATA is checked in onData.
      size: opts.maxMessageBytes,
      // Every reply carries an enhanced status code (RFC 2034): ours their own (replies.ts),
      // smtp-server's its mapping — GuardedConnection keeps the two from stacking.
      hideENHANCEDSTATUSCODES: false,
      maxClients: opts.maxClients,
      closeTimeout: opts.closeTimeoutMs,
      // The idle timeout (socketTimeout) and the command line limit come from `limits`
      // (GuardedSmtpServer); RFC 5321 §4.5.3.2.7 asks for at least 5 minutes awaiting a command.
      // TCP_NODELAY (ECOSYSTEM.md, the Nagle trap): smtp-server 3.21 sets it on every accepted
      // socket itself (SMTPConnection's constructor), so pipelined replies are not held back.
      logger: false,
      onConnect: (session, callback) => this.onConnect(session, callback),
      onSecure: (socket, session, callback) => this.onSecure(socket as TLSSocket, session, callback),
      onAuth: (auth, session, callback) => this.onAuth(auth, session, callback),
      onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
      onRcptTo: (address, session, callback) => this.onRcptTo(address, session, callback),
      onData: (stream, session, callback) => this.onData(stream, session, callback),
      onClose: (session) => this.onClose(session),
    }, submission);
    // Connection-level errors (resets, failed handshakes) are the client's business, not ours;
    // without a listener the EventEmitter would throw them.
    this.server.on('error', (err: Error & { code?: string; remoteAddress?: string }) =>
      opts.log.debug({ err: err.message, code: err.code, client: err.remoteAddress }, 'smtp connection error'),
    );
  }

  get listening(): boolean {
    return this.server.server.listening;
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`cannot listen for SMTP on ${host}:${port}: ${err.message}`));
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.off('error', onError);
        resolve();
      });
    });
    return (this.server.server.address() as AddressInfo).port;
  }

  /**
   * Stops accepting connections; open sessions may finish until closeTimeout, then smtp-server
   * answers 421 to the stragglers. Then waits (bounded) for data handlers still committing.
   */
  async close(drainMs: number): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.inFlight.size > 0) await Promise.race([Promise.allSettled([...this.inFlight]), sleep(drainMs)]);
  }

  private state(session: SMTPServerSession): ConnectionState {
    let state = this.connections.get(session);
    if (!state) {
      // Both lookups run while the client talks; MAIL FROM and DATA await them.
      const clientTenant = this.opts.relay.clientTenant(session.remoteAddress).catch((err: unknown) => {
        this.opts.log.warn({ err: (err as Error).message, client: session.remoteAddress }, 'outbound range lookup failed');
        return 'error' as const;
      });
      const exemptRange = isExemptAddress(session.remoteAddress, this.opts.checks?.exemptCidrs ?? []);
      const exempt = exemptRange ? Promise.resolve(true) : clientTenant.then((t) => t !== null && t !== 'error');
      state = {
        clientName: this.opts.clientName(session.remoteAddress),
        tls: null,
        tenantId: null,
        countedAs: null,
        clientTenant,
        auth: null,
        tx: null,
        exempt,
        dnsbl: skipped,
        transactionId: randomUUID(),
        messageCounted: false,
        firstRefusalAt: null,
      };
      this.connections.set(session, state);
    }
    return state;
  }

  private onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    // Before any lookup: a client over its connection limit costs nothing more than the 421.
    const key = clientKey(session.remoteAddress);
    if (!this.perClient.tryOpen(key)) {
      this.opts.log.info({ client: session.remoteAddress, open: this.perClient.count(key) }, 'connection refused: too many from this client');
      return callback(replies.tooManyConnectionsFromIp());
    }
    // The lookups run while the client talks; DATA awaits them (they are long done by then).
    const state = this.state(session);
    state.countedAs = key;
    // Per-client rate limits and DNSBL are about mail from the internet: the MX port. The
    // submission ports have AUTH, its failure limit and the tenant's outbound limit.
    if (this.opts.listener !== 'mx' || !this.opts.checks) return callback();
    const { dnsbl, rateLimits } = this.opts.checks;
    if (dnsbl.enabled) {
      state.dnsbl = state.exempt.then((exempt) => (exempt ? skipped : dnsbl.check(session.remoteAddress)));
      // Never rejected (the check fails soft), but a handler keeps a bug from becoming an unhandled rejection.
      state.dnsbl.catch(() => {});
    }
    if (!rateLimits) return callback();
    state.exempt
      .then(async (exempt) => (exempt ? null : rateLimits.take('connections', session.remoteAddress)))
      .then(
        (taken) => {
          if (taken?.result !== 'limited') return callback();
          this.opts.log.info({ client: session.remoteAddress, check: 'rate-limit', why: 'connections', count: taken.count, reply: taken.reply.message }, 'connection refused: client rate limit');
          callback(taken.reply);
        },
        (err: unknown) => {
          // A rate limiter must not stop mail: an unexpected failure lets the client in.
          this.opts.log.warn({ err: (err as Error).message, client: session.remoteAddress }, 'connection rate limit failed: passing');
          callback();
        },
      );
  }

  private onClose(session: SMTPServerSession): void {
    const state = this.connections.get(session);
    if (state?.countedAs) this.perClient.close(state.countedAs);
    this.connections.delete(session);
  }

  private onSecure(socket: TLSSocket, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const cipher = session.tlsOptions ? session.tlsOptions.standardName || session.tlsOptions.name : socket.getCipher()?.name;
    this.state(session).tls = { protocol: socket.getProtocol?.() ?? 'unknown', cipher: cipher ?? 'unknown' };
    callback();
  }

  /** SMTP AUTH PLAIN/LOGIN (RFC 4954) on a submission port, under TLS (guarded-smtp-server.ts). */
  private onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const state = this.state(session);
    const username = auth.username ?? '';
    this.opts.relay
      .authenticate({ username, password: auth.password ?? '', authzid: auth.authcid ? auth.authzid : undefined, clientKey: clientKey(session.remoteAddress) })
      .then(
        (outcome) => {
          if (outcome.ok) {
            state.auth = outcome.user;
            this.opts.log.info({ client: session.remoteAddress, username: outcome.user.username, tenantId: outcome.user.tenantId }, 'smtp client authenticated');
            return callback(null, { user: outcome.user.username });
          }
          // The password is never logged; the username is (it is what an operator searches for).
          this.opts.log.info({ client: session.remoteAddress, username: username.slice(0, 64), why: outcome.why, reply: outcome.reply.message }, 'smtp authentication refused');
          callback(outcome.reply);
        },
        (err: unknown) => {
          this.opts.log.error({ err: (err as Error).message, client: session.remoteAddress }, 'smtp authentication failed');
          callback(replies.authTempFail());
        },
      );
  }

  /**
   * MAIL FROM decides what the transaction is: inbound mail, or a tenant's outbound mail (AUTH or
   * a registered range, the tenant's own sender), counted against the tenant's rate limit here —
   * before the client sends the body — so that a refusal costs it nothing but a later retry.
   */
  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const state = this.state(session);
    state.tx = null;
    // A new transaction: its refusals are tracked under a fresh id, its message counted afresh.
    state.transactionId = randomUUID();
    state.messageCounted = false;
    state.firstRefusalAt = null;
    this.decideTransaction(address.address, session, state).then(
      (tx) => {
        if (tx.direction === 'refused') {
          this.opts.log.info({ client: session.remoteAddress, mailFrom: address.address, why: tx.why, reply: tx.reply.message }, 'sender refused');
          return callback(tx.reply);
        }
        state.tx = tx;
        callback();
      },
      (err: unknown) => {
        this.opts.log.error({ err: (err as Error).message, client: session.remoteAddress }, 'sender policy failed');
        callback(replies.tempFail());
      },
    );
  }

  private async decideTransaction(mailFrom: string, session: SMTPServerSession, state: ConnectionState): Promise<SenderDecision> {
    const ipTenant = await state.clientTenant;
    if (ipTenant === 'error') return { direction: 'refused', reply: replies.tempFail(), why: 'range-lookup-failed' };
    const authTenantId = session.user && state.auth ? state.auth.tenantId : null;
    const sender = parseSender(mailFrom);
    const relaying = authTenantId ?? ipTenant;
    const owner = relaying !== null && sender.kind === 'address' ? await this.opts.relay.senderOwner(sender.domain) : null;
    const decision = decideSender({ listener: this.opts.listener, secure: session.secure, authTenantId, ipTenantId: ipTenant }, sender, owner);
    if (decision.direction !== 'outbound') return decision;
    const limited = await this.opts.relay.takeMessage(decision.tenantId);
    return limited ? { direction: 'refused', reply: limited, why: 'rate-limited' } : decision;
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const state = this.state(session);
    const accepted = session.envelope.rcptTo.map((r) => r.address);
    const tx = state.tx;
    if (tx?.direction === 'outbound') {
      const decision = decideOutboundRecipient(address.address, { accepted, maxRecipients: this.opts.maxRecipients });
      if (decision.accept) {
        state.tenantId = tx.tenantId;
        return callback();
      }
      this.opts.log.info({ client: session.remoteAddress, rcpt: address.address, why: decision.why, reply: decision.reply.message }, 'outbound recipient refused');
      return callback(decision.reply);
    }
    // The tenant belongs to the transaction: smtp-server empties rcptTo on RSET, EHLO, STARTTLS
    // and after DATA, and so a new transaction starts with no tenant.
    const tenantId = accepted.length > 0 ? state.tenantId : null;
    this.decideInbound(address.address, session, state, { tenantId, accepted }).then(
      (decision) => {
        if (decision.accept) {
          state.tenantId = decision.tenantId;
          return callback();
        }
        // A registered server relaying for someone else's sender learns why it may not.
        const reply = decision.why === 'not-protected' && tx?.registeredIpForeignSender ? replies.relayDeniedForeignSender() : decision.reply;
        this.opts.log.info({ client: session.remoteAddress, rcpt: address.address, why: decision.why, reply: reply.message }, 'recipient refused');
        callback(reply);
      },
      (err: unknown) => {
        this.opts.log.error({ err: (err as Error).message, client: session.remoteAddress }, 'recipient policy failed');
        callback(replies.tempFail());
      },
    );
  }

  /**
   * An inbound recipient: the recipient policy (protected domain, relay rules), then the
   * SMTP-time checks (smtp-checks.ts). A check's refusal is tracked for the tenant.
   */
  private async decideInbound(rawAddress: string, session: SMTPServerSession, state: ConnectionState, tx: TransactionSoFar): Promise<RecipientDecision> {
    const decision = await this.opts.policy.decide(rawAddress, tx);
    const checks = this.opts.checks;
    if (!decision.accept || !checks) return decision;
    const rcpt = classifyRecipient(rawAddress);
    if (!rcpt.ok) throw new MoatError('VALIDATION_FAILED', `accepted recipient does not classify: ${rcpt.reason}`);
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const firstOfTransaction = !state.messageCounted;
    state.messageCounted = true;
    const exempt = state.auth !== null || (await state.exempt);
    const checked = await checks.inbound.decide({
      tenantId: decision.tenantId,
      rcpt,
      clientIp: session.remoteAddress,
      mailFrom,
      firstOfTransaction,
      exempt,
      dnsbl: () => state.dnsbl,
    });
    if (checked.accept) return decision;
    state.firstRefusalAt ??= new Date();
    checks.rejections.record({
      transactionId: state.transactionId,
      tenantId: decision.tenantId,
      rcpt: rcpt.address,
      check: checked.check,
      why: checked.why,
      reply: checked.reply,
      client: { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '' },
      mailFrom,
      at: state.firstRefusalAt,
      ...(checked.zone ? { zone: checked.zone } : {}),
    });
    return { accept: false, reply: checked.reply, why: `${checked.check}:${checked.why}` };
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    // Exactly one answer, whatever happens (STYLE.md: a data handler that can end without
    // answering makes the client retry: duplicates).
    let answered = false;
    const answer = (err: Error | null, message?: string) => {
      if (answered) return;
      answered = true;
      callback(err, message);
    };
    const work = this.receive(stream, session).then(
      (text) => answer(null, text),
      (err: unknown) => answer(this.failureReply(err, session)),
    );
    this.track(work);
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const limits = this.limits;
    const collected = await collectMessage(stream, { maxBytes: this.opts.maxMessageBytes, maxLineBytes: limits.maxMessageLineBytes, maxHeaderBytes: limits.maxHeaderBytes });
    // Refused, not repaired: the customer's server must get the bytes the sender sent (a bare
    // CR/LF is what SMTP smuggling hides a second message behind, RFC 5321 §2.3.8).
    if (collected.refusal !== null) throw this.refusalReply(collected.refusal);
    const state = this.state(session);
    if (state.tenantId === null) throw new MoatError('VALIDATION_FAILED', 'DATA without a tenant fixed by an accepted recipient');
    const tx = state.tx;
    if (tx === null) throw new MoatError('VALIDATION_FAILED', 'DATA without a transaction decided at MAIL FROM');
    const direction = tx.direction;
    const rcptTo = session.envelope.rcptTo.map((r) => {
      const rcpt = classifyRecipient(r.address);
      if (!rcpt.ok) throw new MoatError('VALIDATION_FAILED', `accepted recipient no longer classifies: ${rcpt.reason}`);
      return rcpt.address;
    });
    const messageId = randomUUID();
    const receivedAt = new Date();
    const ptr = await state.clientName;
    const tls = session.secure ? (state.tls ?? { protocol: 'unknown', cipher: 'unknown' }) : null;
    const helo = session.hostNameAppearsAs || '';
    const candidate: Omit<MessageAcceptedPayload, 'store'> = {
      messageId,
      tenantId: state.tenantId,
      direction,
      mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      rcptTo,
      client: { ip: session.remoteAddress, helo, ptr, tls },
      size: collected.raw.length,
      sha256: collected.sha256,
      prependHeaders: buildReceivedHeader({
        helo,
        ptr,
        ip: session.remoteAddress,
        hostname: this.opts.hostname,
        esmtp: session.openingCommand !== 'HELO',
        tls: tls !== null,
        authenticated: direction === 'outbound' && tx.via === 'auth',
        messageId,
        recipients: rcptTo,
        date: receivedAt,
      }),
      receivedAt: receivedAt.toISOString(),
    };
    // The contract is checked before anything is stored: an event consumers would park is a bug
    // here, and the client keeps the message (451) until it is fixed.
    const payload = payloadBeforeStore.parse(candidate);
    const accepted = await this.withDeadline((signal) =>
      commitMessage(
        this.opts.intake,
        { message: { id: messageId, tenantId: payload.tenantId, receivedAt, sha256: payload.sha256, raw: collected.raw }, payload, eventId: uuidFrom('message.accepted', messageId) },
        signal,
      ),
    );
    this.opts.log.info(
      {
        messageId,
        tenantId: accepted.tenantId,
        direction,
        via: tx.direction === 'outbound' ? tx.via : null,
        username: tx.direction === 'outbound' && tx.via === 'auth' ? state.auth?.username : undefined,
        client: accepted.client.ip,
        rcpts: accepted.rcptTo.length,
        size: accepted.size,
        tls: accepted.client.tls?.protocol ?? null,
      },
      'message accepted',
    );
    return `2.0.0 Ok: queued as ${messageId}`;
  }

  /**
   * Runs the commit under the intake deadline. When the deadline passes first the client gets
   * 451 at once; the commit goes on, undoes a late store write, and is still tracked so that
   * stop() does not close the stores under it. A publish confirmed after the deadline means the
   * message goes through and the client's retry becomes a duplicate: never a loss.
   */
  private async withDeadline<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new MoatError('HANDLER_TIMEOUT', `storing and publishing took longer than ${this.opts.intakeTimeoutMs} ms`));
      }, this.opts.intakeTimeoutMs);
    });
    const work = fn(controller.signal);
    this.track(work);
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private refusalReply(refusal: MessageRefusal): MoatError {
    const limits = this.limits;
    switch (refusal) {
      case 'oversize':
        return replies.tooBig();
      case 'header-too-large':
        return replies.headerTooBig(limits.maxHeaderBytes);
      case 'nul':
        return replies.nulInMessage();
      case 'bare-line-ending':
        return replies.bareLineEnding();
      case 'line-too-long':
        return replies.messageLineTooLong(limits.maxMessageLineBytes);
    }
  }

  private failureReply(err: unknown, session: SMTPServerSession): Error {
    if (isSmtpReply(err)) {
      this.opts.log.info({ client: session.remoteAddress, reply: err.message }, 'message refused');
      return err;
    }
    const e = err as Error & { code?: string };
    if (e.code === 'ECONNECTION' || (e.message ?? '').startsWith('data stream closed')) {
      this.opts.log.info({ client: session.remoteAddress }, 'client went away in mid-message; nothing kept');
    } else {
      this.opts.log.warn({ client: session.remoteAddress, err: e.message, code: e.code }, 'message not accepted: answering 451');
    }
    return replies.tempFail();
  }

  private track(work: Promise<unknown>): void {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
  }
}
