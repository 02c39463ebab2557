import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { MoatError } from '@moat/runtime';
import type { Keyring } from './crypto.js';

/**
 * Sealing to the holders of the keyring, by processes that do not hold it.
 *
 * The gateway generates DKIM private keys but must not hold the master key: with it, a
 * compromised API process could read every stored message (least privilege, checked by the
 * compose and Kubernetes tests). So each master key also yields an X25519 key pair (HKDF of the
 * master key, RFC 5869); a service that holds the keyring publishes the public half, and anyone
 * can seal to it (ephemeral X25519, HKDF-SHA256, AES-256-GCM: the HPKE base-mode construction,
 * RFC 9180, spelt out with node:crypto). Only a holder of that master key opens the result.
 * Rotating the master key rotates the sealing key with it; sealed data keeps naming the key id
 * that opens it, as message bodies do.
 */

export interface SealedBox {
  /** The master key whose derived X25519 key opens this box. */
  keyId: string;
  /** The sender's ephemeral X25519 public key, raw (32 bytes). */
  ephemeralKey: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

/** The recipient key to seal to: a master key id and the raw X25519 public key derived from it. */
export interface SealingKey {
  keyId: string;
  publicKey: Buffer;
}

// DER prefixes of X25519 keys (RFC 8410): PKCS#8 and SubjectPublicKeyInfo around the raw 32 bytes.
const pkcs8Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');
const spkiPrefix = Buffer.from('302a300506032b656e032100', 'hex');

function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(spkiPrefix.length);
}

function publicFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error(`an X25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: 'der', type: 'spki' });
}

function derivedPrivate(masterKey: Buffer, keyId: string): KeyObject {
  const seed = Buffer.from(hkdfSync('sha256', masterKey, Buffer.from('moat sealing key'), Buffer.from(`x25519/${keyId}`), 32));
  return createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: 'der', type: 'pkcs8' });
}

/** The sealing key of the keyring's current master key, to publish. */
export function sealingKeyOf(keyring: Keyring): SealingKey {
  const master = keyring.keys.get(keyring.currentId)!;
  return { keyId: keyring.currentId, publicKey: rawPublic(createPublicKey(derivedPrivate(master, keyring.currentId))) };
}

/** The box's AES key: both public keys go into the derivation, binding it to this sender and recipient. */
function boxKey(shared: Buffer, ephemeral: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), Buffer.from('moat sealed box v1'), 32));
}

/** Seals plaintext to a published sealing key; `aad` binds the box to where it is stored. */
export function sealTo(recipient: SealingKey, plaintext: Buffer, aad: string): SealedBox {
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralRaw = rawPublic(ephemeral.publicKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicFromRaw(recipient.publicKey) });
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', boxKey(shared, ephemeralRaw, recipient.publicKey), iv);
  cipher.setAAD(Buffer.from(aad));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: recipient.keyId, ephemeralKey: ephemeralRaw, iv, tag: cipher.getAuthTag(), ciphertext };
}

/** Opens a box with the keyring; DECRYPT_FAILED (permanent) when its master key is missing or the box was altered or moved. */
export function openBox(keyring: Keyring, box: SealedBox, aad: string): Buffer {
  const master = keyring.keys.get(box.keyId);
  if (!master) throw new MoatError('DECRYPT_FAILED', `master key ${box.keyId} is not configured (MOAT_PREVIOUS_MASTER_KEYS)`, { permanent: true });
  try {
    const recipient = derivedPrivate(master, box.keyId);
    const shared = diffieHellman({ privateKey: recipient, publicKey: publicFromRaw(box.ephemeralKey) });
    const decipher = createDecipheriv('aes-256-gcm', boxKey(shared, box.ephemeralKey, rawPublic(createPublicKey(recipient))), box.iv);
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(box.tag);
    return Buffer.concat([decipher.update(box.ciphertext), decipher.final()]);
  } catch (err) {
    throw new MoatError('DECRYPT_FAILED', 'sealed box failed authentication (wrong key, altered, or moved to another row)', { permanent: true, cause: err });
  }
}
