import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '@moat/runtime';

export type SecretSource = 'environment' | 'file' | 'generated';

export interface ResolvedSecret {
  value: string;
  source: SecretSource;
  /** The file it was read from or written to (not for `environment`). */
  file: string | null;
}

export interface ResolvedSecrets {
  masterKey: ResolvedSecret;
  bootstrapToken: ResolvedSecret;
  /** The quarantine preview key (filter and gateway); null in production when not given (no previews). */
  previewKey: ResolvedSecret | null;
}

export interface SecretsInput {
  production: boolean;
  stateDir: string;
  masterKey: string | undefined;
  bootstrapToken: string | undefined;
  previewKey?: string | undefined;
}

export const masterKeyFileName = 'master.key';
export const bootstrapTokenFileName = 'bootstrap-token';
export const previewKeyFileName = 'quarantine-preview.key';

/**
 * The two secrets every stack needs: the master key (wraps every stored message's data key)
 * and the operator's bootstrap token (first login to the API).
 *
 * From the environment when set. In production a missing one is a configuration error naming
 * the variable: generating one there would silently make earlier messages unreadable (a new
 * master key) or lock the operator out (a token nobody saw). Elsewhere, a dev secret is
 * generated once into the state directory (0600) and reused on every later start, because a
 * master key that changed between two `npm start`s would leave every stored message
 * undecryptable.
 */
export function resolveSecrets(input: SecretsInput): ResolvedSecrets {
  if (input.production) {
    const missing = [
      input.masterKey === undefined ? 'MOAT_MASTER_KEY: required when MOAT_ENV=production (32 bytes, base64: openssl rand -base64 32)' : null,
      input.bootstrapToken === undefined ? 'MOAT_BOOTSTRAP_TOKEN: required when MOAT_ENV=production (e.g. op_$(openssl rand -hex 24))' : null,
    ].filter((p): p is string => p !== null);
    if (missing.length > 0) throw new ConfigError(missing);
  }
  return {
    masterKey: resolveOne(input.masterKey, join(input.stateDir, masterKeyFileName), input.stateDir, generateMasterKey, isValidMasterKey, 'MOAT_MASTER_KEY'),
    bootstrapToken: resolveOne(input.bootstrapToken, join(input.stateDir, bootstrapTokenFileName), input.stateDir, generateBootstrapToken, isValidBootstrapToken, 'MOAT_BOOTSTRAP_TOKEN'),
    // Optional (previews are a convenience, not a promise): taken from the environment when set;
    // generated only for a dev stack whose master key lives in the state directory too, so that
    // previews work out of the box there and a managed deployment gets no file it did not ask for.
    previewKey:
      input.previewKey === undefined && (input.production || input.masterKey !== undefined)
        ? null
        : resolveOne(input.previewKey, join(input.stateDir, previewKeyFileName), input.stateDir, generateMasterKey, isValidMasterKey, 'MOAT_QUARANTINE_PREVIEW_KEY'),
  };
}

export function generateMasterKey(): string {
  return randomBytes(32).toString('base64');
}

export function generateBootstrapToken(): string {
  return `op_${randomBytes(24).toString('hex')}`;
}

export function isValidMasterKey(value: string): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(value) && Buffer.from(value, 'base64').length === 32;
}

export function isValidBootstrapToken(value: string): boolean {
  return value.length >= 24 && !/\s/.test(value);
}

function resolveOne(
  fromEnv: string | undefined,
  file: string,
  stateDir: string,
  generate: () => string,
  isValid: (v: string) => boolean,
  variable: string,
): ResolvedSecret {
  if (fromEnv !== undefined) return { value: fromEnv, source: 'environment', file: null };
  const existing = readSecretFile(file);
  if (existing !== null) {
    if (!isValid(existing)) throw new ConfigError([`${variable}: ${file} does not hold a valid value; fix or delete it (deleting the master key makes stored messages unreadable)`]);
    return { value: existing, source: 'file', file };
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const value = generate();
  try {
    // `wx`: never overwrite. Two supervisors starting at once must end up with one key, so the
    // loser of the race reads the winner's file instead of replacing it.
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const winner = readSecretFile(file);
    if (winner === null || !isValid(winner)) throw new ConfigError([`${variable}: ${file} appeared while being created but holds no valid value`]);
    return { value: winner, source: 'file', file };
  }
  return { value, source: 'generated', file };
}

function readSecretFile(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  // A secret readable by others is tightened rather than refused: it is a dev secret, and the
  // supervisor is the only one meant to read it.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return text.trim();
}
