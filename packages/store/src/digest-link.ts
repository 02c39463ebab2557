import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// =============================================================================================
// Digest release links (issue 5): `${MOAT_PUBLIC_URL}/digest/release/{token}`. The archive signs
// them into a digest, the gateway verifies them; the token is the only credential, so it is
// self-contained and unforgeable without MOAT_DIGEST_LINK_KEY:
//   token = base64url(JSON payload) "." base64url(HMAC-SHA256(key, "moat-digest-link.v1." + payload part))
// Single use is not the token's business: the gateway records the nonce when the link is used
// (digest_link_uses), in the database, so two replicas agree.
// =============================================================================================

/** What a link says: release this quarantined message for this mailbox, until then, once (the nonce). */
export interface DigestLink {
  messageId: string;
  /** The mailbox the digest went to (lower-case): it must still be a recipient of the message. */
  mailbox: string;
  expiresAt: Date;
  /** Unique per link; the key of its single use. */
  nonce: string;
}

export type DigestLinkCheck =
  | { ok: true; link: DigestLink }
  /** `malformed`: not a token at all; `bad-signature`: forged, altered or signed with another key; `expired`: genuine but too late. */
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'expired'; link?: DigestLink };

/** Longer tokens are refused before any work (a URL segment, never megabytes). */
export const maxDigestTokenLength = 1024;

/** Domain separation: a MAC made for something else with the same key never verifies as a link. */
const macLabel = 'moat-digest-link.v1.';

/** The signed payload: version, message id, mailbox, expiry (Unix seconds), nonce. */
interface LinkPayload {
  v: 1;
  m: string;
  r: string;
  e: number;
  n: string;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const noncePattern = /^[A-Za-z0-9_-]{16,64}$/;

function isLinkPayload(v: unknown): v is LinkPayload {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return (
    p.v === 1 &&
    typeof p.m === 'string' &&
    uuidPattern.test(p.m) &&
    typeof p.r === 'string' &&
    p.r.length >= 3 &&
    p.r.length <= 320 &&
    typeof p.e === 'number' &&
    Number.isSafeInteger(p.e) &&
    p.e > 0 &&
    typeof p.n === 'string' &&
    noncePattern.test(p.n)
  );
}

function mac(key: Buffer, payloadPart: string): Buffer {
  return createHmac('sha256', key).update(macLabel + payloadPart).digest();
}

/** A fresh nonce: 128 random bits, base64url. */
export function newDigestNonce(): string {
  return randomBytes(16).toString('base64url');
}

export function signDigestLink(key: Buffer, link: DigestLink): string {
  const payload: LinkPayload = { v: 1, m: link.messageId.toLowerCase(), r: link.mailbox.toLowerCase(), e: Math.floor(link.expiresAt.getTime() / 1000), n: link.nonce };
  if (!isLinkPayload(payload)) throw new Error('digest link: not a message id, mailbox, expiry and nonce');
  const payloadPart = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${payloadPart}.${mac(key, payloadPart).toString('base64url')}`;
}

/**
 * Verifies a token: the MAC first (constant-time compare, before the payload is even parsed, so
 * nothing an attacker wrote is interpreted unless the key made it), then the expiry against `now`.
 * `keys`: the current key and, after a rotation, the previous ones still accepted (links already
 * in mailboxes keep working until they expire); every key is tried, so the time taken does not
 * tell which one matched.
 */
export function verifyDigestLink(keys: Buffer | readonly Buffer[], token: string, now: Date = new Date()): DigestLinkCheck {
  if (token.length > maxDigestTokenLength) return { ok: false, reason: 'malformed' };
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const given = Buffer.from(m[2]!, 'base64url');
  let genuine = false;
  for (const key of Buffer.isBuffer(keys) ? [keys] : keys) {
    const expected = mac(key, m[1]!);
    if (given.length === expected.length && timingSafeEqual(given, expected)) genuine = true;
  }
  if (!genuine) return { ok: false, reason: 'bad-signature' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(m[1]!, 'base64url').toString('utf8'));
  } catch {
    parsed = null;
  }
  // Signed with our key yet unreadable: only a bug or another version makes this.
  if (!isLinkPayload(parsed)) return { ok: false, reason: 'malformed' };
  const link: DigestLink = { messageId: parsed.m, mailbox: parsed.r, expiresAt: new Date(parsed.e * 1000), nonce: parsed.n };
  if (link.expiresAt.getTime() <= now.getTime()) return { ok: false, reason: 'expired', link };
  return { ok: true, link };
}

/** MOAT_DIGEST_LINK_KEY (base64) as the HMAC key. */
export function digestLinkKeyFromConfig(value: string): Buffer {
  return Buffer.from(value, 'base64');
}

/** MOAT_DIGEST_LINK_PREVIOUS_KEYS (comma-separated base64) as HMAC keys; [] when unset. */
export function previousDigestLinkKeysFromConfig(value: string | undefined): Buffer[] {
  return value === undefined ? [] : value.split(',').map((k) => Buffer.from(k.trim(), 'base64'));
}
