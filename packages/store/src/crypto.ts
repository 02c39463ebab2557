import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MoatError } from '@moat/runtime';

/**
 * Envelope encryption: every message gets a fresh 256-bit data key; the body is sealed with it
 * (AES-256-GCM, the message id as additional data so a body cannot be swapped between rows), and
 * the data key is sealed with the master key. A new master key seals new messages; older keys stay
 * in the keyring (MOAT_PREVIOUS_MASTER_KEYS) so older messages still open.
 */
export interface Keyring {
  currentId: string;
  keys: Map<string, Buffer>;
}

export function keyringFromConfig(cfg: { MOAT_MASTER_KEY: string; MOAT_MASTER_KEY_ID: string; MOAT_PREVIOUS_MASTER_KEYS: string }): Keyring {
  const keys = new Map<string, Buffer>();
  for (const part of cfg.MOAT_PREVIOUS_MASTER_KEYS.split(',').filter(Boolean)) {
    const i = part.indexOf(':');
    keys.set(part.slice(0, i), Buffer.from(part.slice(i + 1), 'base64'));
  }
  keys.set(cfg.MOAT_MASTER_KEY_ID, Buffer.from(cfg.MOAT_MASTER_KEY, 'base64'));
  return { currentId: cfg.MOAT_MASTER_KEY_ID, keys };
}

export interface Sealed {
  keyId: string;
  /** iv (12) ‖ tag (16) ‖ encrypted data key (32) */
  wrappedKey: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): { iv: Buffer; tag: Buffer; ciphertext: Buffer } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, tag: cipher.getAuthTag(), ciphertext };
}

function gcmOpen(key: Buffer, iv: Buffer, tag: Buffer, ciphertext: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

export function seal(keyring: Keyring, plaintext: Buffer, aad: string): Sealed {
  const master = keyring.keys.get(keyring.currentId)!;
  const dataKey = randomBytes(32);
  const aadBuf = Buffer.from(aad);
  const wrapped = gcmSeal(master, dataKey, aadBuf);
  const body = gcmSeal(dataKey, plaintext, aadBuf);
  return { keyId: keyring.currentId, wrappedKey: Buffer.concat([wrapped.iv, wrapped.tag, wrapped.ciphertext]), ...body };
}

export function open(keyring: Keyring, sealed: Sealed, aad: string): Buffer {
  const master = keyring.keys.get(sealed.keyId);
  if (!master) throw new MoatError('DECRYPT_FAILED', `master key ${sealed.keyId} is not configured (MOAT_PREVIOUS_MASTER_KEYS)`, { permanent: true });
  const aadBuf = Buffer.from(aad);
  try {
    const w = sealed.wrappedKey;
    const dataKey = gcmOpen(master, w.subarray(0, 12), w.subarray(12, 28), w.subarray(28), aadBuf);
    return gcmOpen(dataKey, sealed.iv, sealed.tag, sealed.ciphertext, aadBuf);
  } catch (err) {
    throw new MoatError('DECRYPT_FAILED', 'message store entry failed authentication (wrong key or tampered)', { permanent: true, cause: err });
  }
}
