import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyringFromConfig } from './crypto.js';
import { openBox, sealingKeyOf, sealTo } from './sealed-box.js';

const master = randomBytes(32).toString('base64');
const keyring = keyringFromConfig({ MOAT_MASTER_KEY: master, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' });

describe('sealed boxes', () => {
  it('when sealed to the keyring’s sealing key, then only the keyring opens it, byte for byte, and the box does not contain the plaintext', () => {
    const secret = Buffer.from('-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n');
    const box = sealTo(sealingKeyOf(keyring), secret, 'dkim-key:1');
    expect(box.keyId).toBe('k1');
    expect(box.ephemeralKey).toHaveLength(32);
    expect(box.ciphertext.includes(Buffer.from('secret'))).toBe(false);
    expect(openBox(keyring, box, 'dkim-key:1').equals(secret)).toBe(true);
  });

  it('when the sealing key is derived twice from the same master key, then it is the same; another key id or master key gives another', () => {
    expect(sealingKeyOf(keyring)).toEqual(sealingKeyOf(keyringFromConfig({ MOAT_MASTER_KEY: master, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' })));
    expect(sealingKeyOf(keyringFromConfig({ MOAT_MASTER_KEY: master, MOAT_MASTER_KEY_ID: 'k2', MOAT_PREVIOUS_MASTER_KEYS: '' })).publicKey.equals(sealingKeyOf(keyring).publicKey)).toBe(false);
    expect(sealingKeyOf(keyringFromConfig({ MOAT_MASTER_KEY: randomBytes(32).toString('base64'), MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' })).publicKey.equals(sealingKeyOf(keyring).publicKey)).toBe(false);
  });

  it('when the box is altered, opened under other additional data, or with another master key, then DECRYPT_FAILED', () => {
    const box = sealTo(sealingKeyOf(keyring), Buffer.from('x'), 'row-a');
    expect(() => openBox(keyring, box, 'row-b')).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED', permanent: true }));
    const flipped = Buffer.from(box.ciphertext);
    flipped[0]! ^= 1;
    expect(() => openBox(keyring, { ...box, ciphertext: flipped }, 'row-a')).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const otherEphemeral = sealTo(sealingKeyOf(keyring), Buffer.from('x'), 'row-a').ephemeralKey;
    expect(() => openBox(keyring, { ...box, ephemeralKey: otherEphemeral }, 'row-a')).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const other = keyringFromConfig({ MOAT_MASTER_KEY: randomBytes(32).toString('base64'), MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' });
    expect(() => openBox(other, box, 'row-a')).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const missing = keyringFromConfig({ MOAT_MASTER_KEY: master, MOAT_MASTER_KEY_ID: 'k9', MOAT_PREVIOUS_MASTER_KEYS: '' });
    expect(() => openBox(missing, box, 'row-a')).toThrow(/master key k1 is not configured/);
  });
});
