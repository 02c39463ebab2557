import type { FixedWindowRateLimiter, Logger, MoatError } from '@moat/runtime';
import type { AuthenticatedSmtpUser } from '@moat/store';
import { ownerCandidates } from './outbound-policy.js';
import type { FindProtectedDomain } from './recipient-policy.js';
import { replies } from './replies.js';

export interface OutboundRelayDeps {
  /** Checks a username and password (store: SmtpCredentialRepository.authenticate). */
  authenticate: (username: string, password: string) => Promise<AuthenticatedSmtpUser | null>;
  /** The tenant whose registered range holds the address (cached by the caller); null when none. */
  tenantForAddress: (ip: string) => Promise<string | null>;
  /** The protected domain of a name (cached by the caller, shared with the recipient policy). */
  findDomain: FindProtectedDomain;
  /** The tenant's outbound messages per window: its own setting or the default (cached by the caller). */
  messagesPerWindow: (tenantId: string) => Promise<number>;
  /** Outbound messages per tenant (Redis, fixed window). */
  messages: Pick<FixedWindowRateLimiter, 'take'>;
  /** Failed AUTHs per client address (Redis, fixed window). */
  authFailures: Pick<FixedWindowRateLimiter, 'take' | 'exceeded'>;
  log: Logger;
}

export type AuthOutcome = { ok: true; user: AuthenticatedSmtpUser } | { ok: false; reply: MoatError; why: string };

/**
 * The lookups and counters behind the outbound relay: who a client is (credential, registered
 * range), who owns a sender domain, and the two limits in Redis. The decisions themselves are in
 * outbound-policy.ts. Every failure of a lookup here fails soft: a 4xx, never an open relay.
 */
export class OutboundRelay {
  constructor(private readonly deps: OutboundRelayDeps) {}

  clientTenant(ip: string): Promise<string | null> {
    return this.deps.tenantForAddress(ip);
  }

  /**
   * SMTP AUTH. A client over the failure limit is cut off (421) before its password is even
   * checked, so guessing stops there; each wrong answer counts. `clientKey` is the client's IPv4
   * address or IPv6 /64 (client-connections.ts). RFC 4616's authorization identity, when given,
   * must be the username itself: acting as another identity is not offered.
   */
  async authenticate(input: { username: string; password: string; authzid?: string | undefined; clientKey: string }): Promise<AuthOutcome> {
    try {
      if (await this.deps.authFailures.exceeded(input.clientKey)) return { ok: false, reply: replies.tooManyAuthFailures(), why: 'too-many-failures' };
      const authzidOk = !input.authzid || input.authzid.toLowerCase() === input.username.toLowerCase();
      const user = authzidOk && input.username !== '' && input.password !== '' ? await this.deps.authenticate(input.username, input.password) : null;
      if (user) return { ok: true, user };
      await this.deps.authFailures.take(input.clientKey);
      return { ok: false, reply: replies.authInvalid(), why: authzidOk ? 'invalid-credentials' : 'authzid-mismatch' };
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'SMTP AUTH could not be checked; answering 454');
      return { ok: false, reply: replies.authTempFail(), why: 'lookup-failed' };
    }
  }

  /** The tenant owning the sender domain: the most specific protected name among it and its parents. */
  async senderOwner(domain: string): Promise<string | null> {
    for (const name of ownerCandidates(domain)) {
      const found = await this.deps.findDomain(name);
      if (found) return found.tenantId;
    }
    return null;
  }

  /**
   * Counts one outbound message of the tenant; null when it is within the tenant's limit, else the
   * 451 4.7.1 to answer. Redis away: 451 4.3.0 (the limit is never skipped).
   */
  async takeMessage(tenantId: string): Promise<MoatError | null> {
    try {
      const limit = await this.deps.messagesPerWindow(tenantId);
      const decision = await this.deps.messages.take(tenantId, limit);
      return decision.allowed ? null : replies.outboundRateLimited(limit, decision.retryAfterMs);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message, tenantId }, 'outbound rate limit could not be checked; answering 451');
      return replies.tempFail();
    }
  }
}
