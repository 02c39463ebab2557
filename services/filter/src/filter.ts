import { performance } from 'node:perf_hooks';
import { routingKeys, type AnyEvent, type EventOf, type MessageFilteredPayload } from '@moat/contracts';
import { MoatError, PermanentFailure, uuidFrom, type Broker, type DnsResolve, type Logger } from '@moat/runtime';
import { sealPreview, type Keyring, type MessageStore } from '@moat/store';
import { authenticateMessage, type AuthOutcome } from './auth-checks.js';
import type { OutboundSigner } from './dkim-signing.js';
import { readHeaderFields, type HeaderFields, type MessageHeaders } from './headers.js';
import { mimeStructureCheck, type MimeLimits } from './mime-structure.js';
import { composePrependHeaders } from './prepend.js';
import { buildPreview } from './quarantine-preview.js';
import { combineSpamScores } from './spam/combine-scanners.js';
import type { SpamCheck } from './spam/spam-check.js';
import { unavailableScanners, type SpamScanners } from './spam-scanners.js';
import { checkForViruses, type ScannerUnavailablePolicy } from './virus-check.js';
import { applyTenantPolicyPerRecipient } from './tenant-policy.js';
import { noTenantSettings, type TenantPolicySource } from './tenant-policy-source.js';
import type { ClamdVerdict } from './clamd.js';

export interface FilterDependencies {
  store: Pick<MessageStore, 'get'>;
  broker: Pick<Broker, 'envelope' | 'publish'>;
  resolver: DnsResolve;
  authservId: string;
  checkTimeoutMs: number;
  /** Signs outbound mail with the tenant's DKIM key; never asked for inbound mail. */
  signer: Pick<OutboundSigner, 'sign'>;
  /** The virus scanner (clamd), or null when none is configured. */
  scanViruses?: ((raw: Buffer) => Promise<ClamdVerdict>) | null;
  /** What a scanner that gives no verdict means for the message. */
  scannerUnavailable?: ScannerUnavailablePolicy;
  /** How long one handling waits for an unavailable scanner (retrying) before giving up on it. */
  scannerRetryMs?: number;
  /** Seals the text preview of quarantined messages (MOAT_QUARANTINE_PREVIEW_KEY); null: no previews. */
  previewKeyring?: Keyring | null;
  /** The built-in spam classifier, its model loaded once at start; inbound mail adds the tenant's learned counts. */
  spam: Pick<SpamCheck, 'run' | 'thresholds'>;
  /** External spam engines (rspamd, spamd) whose scores are added to the built-in one; null: none. */
  spamScanners?: Pick<SpamScanners, 'run'> | null;
  /** Deepest MIME nesting and most parts a message may have before it is quarantined (defaults: mime-structure.ts). */
  mimeLimits?: MimeLimits;
  /** Tenants' filter policies and lists (tenant-policy.ts); null: every tenant gets the service's behaviour. */
  tenantPolicy?: Pick<TenantPolicySource, 'settingsFor'> | null;
  log: Logger;
}

/** The scanner gave no verdict and the policy is to wait: the broker redelivers later. */
export class ScannerUnavailable extends Error {}

const noHeaders: MessageHeaders = { from: null, to: null, subject: null, date: null, messageIdHeader: null };

/**
 * Outbound mail (relayed for a client that authenticated or sends from a tenant's registered
 * address) is the tenant's own: SPF, DKIM and DMARC tell a receiver whether to trust a sender,
 * and judging the customer's internal server against its own domain's SPF record (which lists
 * Moat's sending ranges, not that server) would only stamp `spf=fail` on its mail. So they are not
 * evaluated, and no Authentication-Results field leaves with the mail (RFC 8601 §5: the field
 * reports what the receiving ADMD's border found; the receiver judges the mail itself, on
 * Moat's DKIM signature and sending address).
 */
export function outboundAuthentication(authservId: string): Pick<AuthOutcome, 'checks' | 'authResults'> {
  return {
    checks: [{ check: 'auth', result: 'skip', reason: 'outbound mail: the client authenticated or sends from a registered address' }],
    // RFC 8601 §2.2: "none" when no method was applied.
    authResults: `${authservId}; none`,
  };
}

/** The id of the filtered event (or of one part of a split message) for an accepted one: a redelivered input re-publishes the same events. */
export function filteredEventId(acceptedEventId: string, part?: string): string {
  return part === undefined ? uuidFrom(acceptedEventId, 'message.filtered') : uuidFrom(acceptedEventId, 'message.filtered', part);
}

/**
 * message.accepted → message.filtered. Reads the body from the message store (claim check),
 * authenticates it, reads the headers the archive and tracking need, and publishes the verdict.
 *
 * Failures, by kind (the Broker acts on what this throws):
 * - the store has no such message: it never will, so PermanentFailure (parked, visible, replayable);
 * - the store or the broker is unreachable: the error propagates as transient and the broker
 *   redelivers after a back-off;
 * - DNS or mailauth trouble: a temperror check result, never a throw (RFC 8601 §2.7).
 */
export class MessageFilter {
  constructor(private readonly deps: FilterDependencies) {}

  async handle(event: AnyEvent): Promise<void> {
    if (event.type !== 'message.accepted') throw new PermanentFailure(`filter consumes message.accepted, got ${event.type}`);
    const started = performance.now();
    const payloads = await this.filter(event);
    // A split message's parts go out one after the other; the input is acked only after the last
    // is confirmed, and a redelivered input re-publishes every part under the same ids.
    for (const payload of payloads) {
      const filtered = this.deps.broker.envelope('message.filtered', payload, filteredEventId(event.id, payload.split?.part));
      await this.deps.broker.publish(routingKeys.messageFiltered, filtered);
      this.deps.log.info(
        {
          messageId: payload.messageId,
          eventId: filtered.id,
          verdict: payload.verdict,
          ...(payload.split ? { part: payload.split.part, rcpts: payload.rcptTo.length } : {}),
          checks: payload.checks.map((c) => `${c.check}=${c.result}`).join(' '),
          ms: Math.round(performance.now() - started),
        },
        'message filtered',
      );
    }
  }

  /**
   * The filtered payloads for an accepted event: one, or one per part when the recipients' own
   * lists split the message (tenant-policy.ts). Pure apart from reading the store and DNS.
   */
  async filter(event: EventOf<'message.accepted'>): Promise<MessageFilteredPayload[]> {
    const accepted = event.payload;
    const raw = await this.readBody(event);
    const outbound = accepted.direction === 'outbound';
    const [auth, headerFields, virus, scanned, tenantSettings] = await Promise.all([
      outbound
        ? outboundAuthentication(this.deps.authservId)
        : authenticateMessage(raw, { ip: accepted.client.ip, helo: accepted.client.helo, mailFrom: accepted.mailFrom }, {
            authservId: this.deps.authservId,
            resolver: this.deps.resolver,
            checkTimeoutMs: this.deps.checkTimeoutMs,
            log: this.deps.log.child({ messageId: accepted.messageId }),
          }),
      // One parse of the header section for the archive's metadata and the policy's From.
      readHeaderFields(raw).catch((err: unknown): HeaderFields => {
        // A header section the parser refuses must not hold the mail back: no metadata, no From.
        this.deps.log.warn({ messageId: accepted.messageId, err: (err as Error).message }, 'header section unreadable; archive metadata left empty');
        return { headers: noHeaders, fromAddresses: [] };
      }),
      checkForViruses(raw, this.deps.scanViruses ?? null, { forMs: this.deps.scannerRetryMs ?? 0, everyMs: 1_000 }),
      this.deps.spamScanners?.run(raw, accepted) ?? [],
      this.deps.tenantPolicy?.settingsFor(accepted.tenantId) ?? noTenantSettings,
    ]);
    const { headers } = headerFields;
    // Only inbound mail is judged on who sent it (lists, anti-spoofing).
    const tenant = { settings: tenantSettings, headerFrom: outbound ? [] : headerFields.fromAddresses };
    // The tenant's fallback overrides the service's (MOAT_FILTER_SCANNER_UNAVAILABLE).
    const fallback = tenant.settings.policy.scannerUnavailable ?? this.deps.scannerUnavailable ?? 'retry';
    if (virus.unavailable && fallback === 'retry') {
      // Thrown as transient: the broker redelivers with back-off; the message is never delivered
      // unscanned and never lost (after the queue's delivery limit it is parked, replayable).
      throw new ScannerUnavailable(`virus scanner unavailable, message ${accepted.messageId} will be filtered again: ${virus.check.reason}`);
    }
    const spamUnavailable = unavailableScanners(scanned);
    if (spamUnavailable.length > 0 && fallback === 'retry') {
      // The same policy as the virus scanner's: an engine that was asked never silently passes.
      throw new ScannerUnavailable(`spam scanner unavailable, message ${accepted.messageId} will be filtered again: ${spamUnavailable.join('; ')}`);
    }
    // Spam is scored after authentication (its results are rules of the spam score; outbound
    // mail has none). Inbound mail adds the tenant's learned counts (per-tenant learning).
    const combined = combineSpamScores(await this.deps.spam.run(raw, auth.checks, outbound ? null : accepted.tenantId), scanned, this.deps.spam.thresholds);
    // A structure deeper or wider than any parser or scanner reads is not delivered unread.
    const mime = mimeStructureCheck(raw, this.deps.mimeLimits);
    // Viruses, lists, anti-spoofing, DMARC and the tenant's spam thresholds decide (tenant-policy.ts),
    // per recipient where the recipients' own lists disagree.
    const parts = applyTenantPolicyPerRecipient({ accepted, auth: outbound ? null : (auth as AuthOutcome).evidence, tenant, virus, mime, spam: combined, service: this.deps.spam.thresholds });
    const unsettled = parts.find((p) => p.outcome.unsettled !== null)?.outcome.unsettled ?? null;
    if (unsettled !== null && fallback === 'retry') {
      throw new ScannerUnavailable(`anti-spoofing unsettled, message ${accepted.messageId} will be filtered again: ${unsettled}`);
    }
    const split = parts.length > 1 ? { parts: parts.map((p) => ({ verdict: p.outcome.verdict, rcptTo: p.rcptTo })) } : null;
    const preview = parts.some((p) => p.outcome.verdict === 'quarantine') ? await this.sealedPreview(raw, accepted.messageId) : null;
    const payloads: MessageFilteredPayload[] = [];
    for (const { rcptTo, outcome: decided } of parts) {
      const { verdict, spam } = decided;
      const reasons = [...decided.reasons];
      if (decided.unsettled !== null) reasons.push(`spoofing check unsettled: delivered (policy: deliver)`);
      if (virus.unavailable) reasons.push('virus scan unavailable: delivered unscanned (policy)');
      let prependHeaders = composePrependHeaders({ accepted: accepted.prependHeaders, authResults: outbound ? null : auth.authResults, verdict, spam: spam.headers }) + decided.headers;
      if (virus.unavailable) prependHeaders += 'X-Moat-Virus-Status: unscanned\r\n';
      if (outbound) {
        // Signed over exactly what the sender transmits (these headers, then the stored message);
        // the signature goes on top, where a signer puts it (RFC 6376 §5.6). t= is the time Moat
        // accepted the message, so a redelivered event is signed byte for byte the same way.
        // (Outbound mail is never split: lists judge inbound senders only.)
        const outcome = await this.deps.signer.sign({ tenantId: accepted.tenantId, raw, prepended: prependHeaders, mailFrom: accepted.mailFrom, signTime: new Date(accepted.receivedAt) });
        if (outcome.signed) prependHeaders = `${outcome.field}${prependHeaders}`;
        reasons.push(outcome.reason);
        this.deps.log.info({ messageId: accepted.messageId, signed: outcome.signed, reason: outcome.reason }, outcome.signed ? 'outbound message DKIM-signed' : 'outbound message not DKIM-signed');
      }
      payloads.push({
        ...accepted,
        rcptTo,
        ...(preview && verdict === 'quarantine' ? { preview } : {}),
        verdict,
        score: spam.score,
        reasons,
        checks: [...auth.checks, virus.check, mime, spam.check, ...scanned.map((s) => s.check), ...decided.checks],
        authResults: auth.authResults,
        headers,
        prependHeaders,
        ...(split ? { split: { part: verdict, ...split } } : {}),
      });
    }
    return payloads;
  }

  /**
   * The sealed text preview of a quarantined message, or null. Best effort: a message the MIME
   * parser refuses is still quarantined, without a preview (the quarantine says so).
   */
  private async sealedPreview(raw: Buffer, messageId: string): Promise<MessageFilteredPayload['preview'] | null> {
    const keyring = this.deps.previewKeyring;
    if (!keyring) return null;
    try {
      return sealPreview(keyring, messageId, await buildPreview(raw));
    } catch (err) {
      this.deps.log.warn({ messageId, err: (err as Error).message }, 'no quarantine preview: the message could not be parsed');
      return null;
    }
  }

  private async readBody(event: EventOf<'message.accepted'>): Promise<Buffer> {
    try {
      return await this.deps.store.get(event.payload.store);
    } catch (err) {
      if (err instanceof MoatError && err.code === 'NOT_FOUND') {
        throw new PermanentFailure(`message ${event.payload.messageId} of event ${event.id} is not in the message store`, err);
      }
      // DECRYPT_FAILED is permanent already (parked); STORE_READ_FAILED is transient (retried).
      throw err;
    }
  }
}
