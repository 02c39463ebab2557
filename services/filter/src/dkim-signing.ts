import { dkimSign, type DKIMSignOptions } from 'mailauth';
import { MoatError, type Logger } from '@moat/runtime';
import { TtlCache, type DkimSigningKey } from '@moat/store';
import { headerFromAddresses } from './headers.js';

/**
 * DKIM signing of outbound mail (RFC 6376 §5) with mailauth's signer, with the tenant's own key.
 *
 * Which key: DMARC (RFC 7489 §3.1.1) passes on DKIM only when the signing domain aligns with the
 * From header's domain, so the From domain's key is tried first, then its parent domains (relaxed
 * alignment: news.acme.example aligns with acme.example), then the envelope sender's domain (no
 * DMARC help, but the receiver still sees mail vouched for by a domain of the tenant). A domain
 * counts only when it is protected by the message's own tenant: one tenant never signs as another.
 */

/**
 * The fields signed when present (RFC 6376 §5.4.1's list of what SHOULD be signed, plus the
 * List-* fields a mailing list may add and a receiver shows). Received and Moat's own trace and
 * verdict fields are left out: they change on every hop. mailauth signs each instance present.
 */
export const signedHeaderFields = [
  'From',
  'Sender',
  'Reply-To',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Content-ID',
  'Content-Description',
  'List-Id',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
] as const;

export type SigningIdentity = 'header-from' | 'envelope-from';

export interface KeyCandidate {
  domain: string;
  identity: SigningIdentity;
}

/** The domain of an address, lower-case, no trailing dot; null for the null reverse-path or a string without one. */
export function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at < 0) return null;
  const domain = address.slice(at + 1).trim().toLowerCase().replace(/\.$/, '');
  return domain.includes('.') ? domain : null;
}

/** The domain and its parents down to two labels: a.b.acme.example → a.b.acme.example, b.acme.example, acme.example. */
function withParents(domain: string): string[] {
  const labels = domain.split('.');
  const out: string[] = [];
  for (let i = 0; labels.length - i >= 2; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/** Where to look for a key, in order of preference, each domain once. */
export function keyCandidates(headerFromDomain: string | null, mailFromDomain: string | null): KeyCandidate[] {
  const seen = new Set<string>();
  const out: KeyCandidate[] = [];
  const add = (domain: string | null, identity: SigningIdentity) => {
    if (!domain) return;
    for (const d of withParents(domain)) {
      if (seen.has(d)) continue;
      seen.add(d);
      out.push({ domain: d, identity });
    }
  };
  add(headerFromDomain, 'header-from');
  add(mailFromDomain, 'envelope-from');
  return out;
}

export interface SigningKeySource {
  activeSigningKey(domain: string): Promise<DkimSigningKey | null>;
}

/**
 * One DKIM-Signature field over `message` (headers and body exactly as the receiver gets them),
 * CRLF-terminated and folded. relaxed/relaxed (RFC 6376 §3.4.2, §3.4.4): survives the header
 * refolding and trailing-whitespace changes relays commonly make.
 */
export async function signatureField(message: Buffer, key: Pick<DkimSigningKey, 'domain' | 'selector' | 'algorithm' | 'privateKeyPem'>, signTime: Date): Promise<string> {
  // mailauth 4.13's signer reads the keys from `signatureData` only, and `headerList` as a
  // colon-separated string (an array, as its bundled types declare, silently signs its own
  // default list instead). `signTime` sets t=; without it there is no t= tag.
  const options = {
    canonicalization: 'relaxed/relaxed',
    headerList: signedHeaderFields.join(':'),
    signTime,
    signatureData: [{ signingDomain: key.domain, selector: key.selector, privateKey: key.privateKeyPem, algorithm: key.algorithm, canonicalization: 'relaxed/relaxed' }],
  };
  const result = await dkimSign(message, options as unknown as DKIMSignOptions);
  const errors = (result.errors ?? []) as Array<{ err?: Error }>;
  if (errors.length > 0) throw new Error(`mailauth could not sign: ${errors.map((e) => e.err?.message ?? String(e)).join('; ')}`);
  // No header section (a message without the blank line after its headers) gives no signature and no error.
  if (!/^DKIM-Signature:/i.test(result.signatures)) throw new Error('mailauth produced no signature (the message has no header section)');
  return result.signatures.endsWith('\r\n') ? result.signatures : `${result.signatures}\r\n`;
}

export type SigningOutcome =
  | { signed: true; field: string; domain: string; selector: string; identity: SigningIdentity; reason: string }
  | { signed: false; reason: string };

export interface OutboundSignerOptions {
  keys: SigningKeySource;
  /** How long a domain's key (or its absence) is remembered; 0 reads it for every message. */
  cacheTtlMs: number;
  log: Logger;
}

/** Picks the tenant's key for an outbound message and signs it. */
export class OutboundSigner {
  private readonly cache: TtlCache<DkimSigningKey | null>;

  constructor(private readonly opts: OutboundSignerOptions) {
    // Opening a key means a query and an X25519 exchange; a domain's key changes rarely, so it is
    // kept briefly: an activation or a retirement takes effect within the TTL.
    this.cache = new TtlCache(opts.cacheTtlMs, 10_000);
  }

  /**
   * The DKIM-Signature field for `prepended` + `raw` (what the sender transmits), or why there is
   * none. A key that cannot be opened leaves the message unsigned, with the reason (the mail
   * still goes; an operator fixes the keyring). The database being away throws: the message is
   * retried, never sent unsigned because of an outage.
   */
  async sign(input: { tenantId: string; raw: Buffer; prepended: string; mailFrom: string; signTime: Date }): Promise<SigningOutcome> {
    const fromAddresses = await headerFromAddresses(input.raw).catch(() => []);
    // RFC 7489 §6.6.1: a message with several From authors has no single domain to align with.
    const headerFromDomain = fromAddresses.length === 1 ? domainOf(fromAddresses[0]!) : null;
    const mailFromDomain = domainOf(input.mailFrom);
    const candidates = keyCandidates(headerFromDomain, mailFromDomain);

    for (const candidate of candidates) {
      let key: DkimSigningKey | null;
      try {
        key = await this.cache.get(candidate.domain, () => this.opts.keys.activeSigningKey(candidate.domain));
      } catch (err) {
        if (err instanceof MoatError && err.code === 'DECRYPT_FAILED') {
          this.opts.log.error({ domain: candidate.domain, err: err.message }, 'DKIM key cannot be opened; the message goes unsigned');
          // The detail (key id, master key id) is for the operator's log; the reason reaches the tenant.
          return { signed: false, reason: `not DKIM-signed: the active key of ${candidate.domain} cannot be opened (an operator must fix the keyring or create a new key; see the filter log)` };
        }
        throw err;
      }
      if (!key) continue;
      if (key.tenantId !== input.tenantId) {
        // Said in the log only: the reason reaches the tenant (tracking), which must not learn whose domain it is.
        this.opts.log.warn({ domain: candidate.domain, tenantId: input.tenantId }, 'outbound mail names a domain of another tenant; not signed with its key');
        continue;
      }
      let field: string;
      try {
        field = await signatureField(Buffer.concat([Buffer.from(input.prepended, 'utf8'), input.raw]), key, input.signTime);
      } catch (err) {
        this.opts.log.error({ domain: key.domain, selector: key.selector, err: (err as Error).message }, 'DKIM signing failed; the message goes unsigned');
        return { signed: false, reason: `not DKIM-signed: signing with d=${key.domain} s=${key.selector} failed (${(err as Error).message})` };
      }
      const why = candidate.identity === 'header-from' ? 'aligned with the From domain' : 'the envelope sender’s domain (not aligned with From)';
      return { signed: true, field, domain: key.domain, selector: key.selector, identity: candidate.identity, reason: `DKIM-signed d=${key.domain} s=${key.selector} (${why})` };
    }
    const looked = candidates.length > 0 ? candidates.map((c) => c.domain).join(', ') : 'none (no From or envelope sender domain)';
    const from = fromAddresses.length > 1 ? '; the From header has several addresses' : '';
    return { signed: false, reason: `not DKIM-signed: no active DKIM key of this tenant for ${looked}${from}` };
  }
}
