import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { maxDigestTokenLength, newDigestNonce, previousDigestLinkKeysFromConfig, signDigestLink, verifyDigestLink, type DigestLink } from './digest-link.js';

const key = randomBytes(32);
const now = new Date('2026-11-28T12:00:00Z');
const link: DigestLink = { messageId: '0f1e2d3c-4b5a-4987-8765-43210fedcba9', mailbox: 'bob@acme.example', expiresAt: new Date('2026-12-05T12:00:00Z'), nonce: newDigestNonce() };

/** The token with one character of its payload part changed (still valid base64url). */
function tampered(token: string, at: number): string {
  const c = token[at] === 'A' ? 'B' : 'A';
  return token.slice(0, at) + c + token.slice(at + 1);
}

describe('digest release links', () => {
  it('when a link is signed and verified with the same key before it expires, then it gives back what was signed', () => {
    const token = signDigestLink(key, link);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(verifyDigestLink(key, token, now)).toEqual({ ok: true, link: { ...link, expiresAt: new Date('2026-12-05T12:00:00Z') } });
  });

  it('when the mailbox or message id is given in upper case, then the link carries them lower-cased', () => {
    const check = verifyDigestLink(key, signDigestLink(key, { ...link, mailbox: 'Bob@ACME.example', messageId: link.messageId.toUpperCase() }), now);
    expect(check.ok && check.link.mailbox).toBe('bob@acme.example');
    expect(check.ok && check.link.messageId).toBe(link.messageId);
  });

  it('when any character of the payload or the signature is changed, then the signature does not verify', () => {
    const token = signDigestLink(key, link);
    for (const at of [0, 5, token.indexOf('.') - 1, token.indexOf('.') + 1, token.length - 2]) {
      expect(verifyDigestLink(key, tampered(token, at), now)).toEqual({ ok: false, reason: 'bad-signature' });
    }
  });

  it('when a payload is swapped for another message (the signature kept), then it does not verify', () => {
    const [, mac] = signDigestLink(key, link).split('.');
    const [otherPayload] = signDigestLink(key, { ...link, messageId: 'aaaaaaaa-4b5a-4987-8765-43210fedcba9' }).split('.');
    expect(verifyDigestLink(key, `${otherPayload}.${mac}`, now)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('when a link made with another key is verified, then it is refused', () => {
    expect(verifyDigestLink(randomBytes(32), signDigestLink(key, link), now)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('when the key was rotated, then a link of the previous key verifies while that key is listed, and not once it is dropped', () => {
    const current = randomBytes(32);
    const token = signDigestLink(key, link);
    expect(verifyDigestLink([current, key], token, now)).toMatchObject({ ok: true, link: { messageId: link.messageId } });
    expect(verifyDigestLink([current], token, now)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(verifyDigestLink([current, key], signDigestLink(current, link), now).ok).toBe(true);
    expect(verifyDigestLink([], token, now)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(previousDigestLinkKeysFromConfig(undefined)).toEqual([]);
    expect(previousDigestLinkKeysFromConfig(`${key.toString('base64')}, ${current.toString('base64')}`)).toEqual([key, current]);
  });

  it('when the link expired, then it is refused as expired (and says what it was for)', () => {
    const token = signDigestLink(key, link);
    expect(verifyDigestLink(key, token, new Date('2026-12-05T12:00:00Z'))).toMatchObject({ ok: false, reason: 'expired', link: { messageId: link.messageId } });
    expect(verifyDigestLink(key, token, new Date('2026-12-05T11:59:59Z')).ok).toBe(true);
  });

  it('when the token is not a token at all, then it is malformed', () => {
    for (const bad of ['', 'abc', 'a.b', `${'x'.repeat(10)}.${'y'.repeat(42)}`, 'a b.c', `${'A'.repeat(maxDigestTokenLength)}.${'B'.repeat(43)}`]) {
      expect(verifyDigestLink(key, bad, now)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('when a payload signed with the key is not a link payload, then it is malformed', () => {
    // What a MAC over something else looks like to the verifier: genuine signature, wrong content.
    const payload = Buffer.from(JSON.stringify({ v: 2, m: link.messageId })).toString('base64url');
    const mac = createHmac('sha256', key).update(`moat-digest-link.v1.${payload}`).digest('base64url');
    expect(verifyDigestLink(key, `${payload}.${mac}`, now)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('when nonces are made, then they differ', () => {
    expect(new Set(Array.from({ length: 100 }, newDigestNonce)).size).toBe(100);
  });
});
