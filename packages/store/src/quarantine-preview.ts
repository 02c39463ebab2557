import type { SealedPreview } from '@moat/contracts';
import { MoatError } from '@moat/runtime';
import { open, seal, type Keyring } from './crypto.js';

/**
 * What the quarantine shows of a message's content: text only (never HTML, so nothing can load,
 * run or track), the first few KiB, and the attachments by name, type and size.
 */
export interface QuarantinePreview {
  /** Plain text: the text/plain part, or the HTML part reduced to its text. */
  text: string;
  /** The text was cut at the preview limit. */
  truncated: boolean;
  /** Where the text came from: `text` (a text/plain part), `html` (reduced to text) or `none`. */
  source: 'text' | 'html' | 'none';
  attachments: Array<{ filename: string | null; mimeType: string; size: number }>;
}

/**
 * The preview keyring (MOAT_QUARANTINE_PREVIEW_KEY and earlier keys), or null when no preview key
 * is configured. Same envelope encryption as message bodies (crypto.ts), with its own keys: the
 * gateway holds these and never the master key.
 */
export function previewKeyringFromConfig(cfg: { MOAT_QUARANTINE_PREVIEW_KEY?: string | undefined; MOAT_QUARANTINE_PREVIEW_KEY_ID: string; MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: string }): Keyring | null {
  if (!cfg.MOAT_QUARANTINE_PREVIEW_KEY) return null;
  const keys = new Map<string, Buffer>();
  for (const part of cfg.MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS.split(',').filter(Boolean)) {
    const i = part.indexOf(':');
    keys.set(part.slice(0, i), Buffer.from(part.slice(i + 1), 'base64'));
  }
  keys.set(cfg.MOAT_QUARANTINE_PREVIEW_KEY_ID, Buffer.from(cfg.MOAT_QUARANTINE_PREVIEW_KEY, 'base64'));
  return { currentId: cfg.MOAT_QUARANTINE_PREVIEW_KEY_ID, keys };
}

/** The additional data binds a preview to its message: a sealed preview moved to another row does not open. */
const aadFor = (messageId: string) => `quarantine-preview:${messageId.toLowerCase()}`;

export function sealPreview(keyring: Keyring, messageId: string, preview: QuarantinePreview): SealedPreview {
  const s = seal(keyring, Buffer.from(JSON.stringify(preview)), aadFor(messageId));
  return { keyId: s.keyId, wrappedKey: s.wrappedKey.toString('base64'), iv: s.iv.toString('base64'), tag: s.tag.toString('base64'), ciphertext: s.ciphertext.toString('base64') };
}

/** Opens a sealed preview; DECRYPT_FAILED (permanent) for an unknown key, an altered or a moved preview. */
export function openPreview(keyring: Keyring, messageId: string, sealed: SealedPreview): QuarantinePreview {
  const plain = open(
    keyring,
    {
      keyId: sealed.keyId,
      wrappedKey: Buffer.from(sealed.wrappedKey, 'base64'),
      iv: Buffer.from(sealed.iv, 'base64'),
      tag: Buffer.from(sealed.tag, 'base64'),
      ciphertext: Buffer.from(sealed.ciphertext, 'base64'),
    },
    aadFor(messageId),
  );
  try {
    return JSON.parse(plain.toString('utf8')) as QuarantinePreview;
  } catch (err) {
    throw new MoatError('DECRYPT_FAILED', 'quarantine preview is not readable JSON', { permanent: true, cause: err });
  }
}
