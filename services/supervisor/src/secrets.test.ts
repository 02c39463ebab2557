import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '@moat/runtime';
import { generateBootstrapToken, generateMasterKey, isValidMasterKey, resolveSecrets } from './secrets.js';

let root: string;
let stateDir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'moat-secrets-'));
  stateDir = join(root, '.moat');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('resolveSecrets', () => {
  it('when no secret is set outside production, then both are generated into the state dir with mode 0600', () => {
    const s = resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    expect(s.masterKey.source).toBe('generated');
    expect(s.bootstrapToken.source).toBe('generated');
    expect(isValidMasterKey(s.masterKey.value)).toBe(true);
    expect(readFileSync(join(stateDir, 'master.key'), 'utf8').trim()).toBe(s.masterKey.value);
    expect(readFileSync(join(stateDir, 'bootstrap-token'), 'utf8').trim()).toBe(s.bootstrapToken.value);
    expect(statSync(join(stateDir, 'master.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(stateDir, 'bootstrap-token')).mode & 0o777).toBe(0o600);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    // The quarantine preview key too, distinct from the master key.
    expect(s.previewKey).toMatchObject({ source: 'generated', file: join(stateDir, 'quarantine-preview.key') });
    expect(isValidMasterKey(s.previewKey!.value)).toBe(true);
    expect(s.previewKey!.value).not.toBe(s.masterKey.value);
  });

  it('when started again, then the same secrets are reused (stored messages stay readable)', () => {
    const first = resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    const second = resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    expect(second.masterKey).toEqual({ value: first.masterKey.value, source: 'file', file: join(stateDir, 'master.key') });
    expect(second.bootstrapToken.value).toBe(first.bootstrapToken.value);
  });

  it('when the environment sets them, then those win and nothing is written', () => {
    const key = generateMasterKey();
    const token = generateBootstrapToken();
    const s = resolveSecrets({ production: false, stateDir, masterKey: key, bootstrapToken: token });
    expect(s.masterKey).toEqual({ value: key, source: 'environment', file: null });
    expect(s.bootstrapToken).toEqual({ value: token, source: 'environment', file: null });
    expect(s.previewKey).toBeNull();
    expect(() => statSync(stateDir)).toThrow();
  });

  it('when in production and a secret is missing, then it is a config error naming the variable', () => {
    let error: unknown;
    try {
      resolveSecrets({ production: true, stateDir, masterKey: generateMasterKey(), bootstrapToken: undefined });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^MOAT_BOOTSTRAP_TOKEN: required when MOAT_ENV=production/)]);
    expect(() => resolveSecrets({ production: true, stateDir, masterKey: undefined, bootstrapToken: undefined })).toThrow(/MOAT_MASTER_KEY[\s\S]*MOAT_BOOTSTRAP_TOKEN/);
    expect(() => statSync(stateDir)).toThrow();
  });

  it('when the key file holds garbage, then it refuses rather than replacing the key', () => {
    resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    writeFileSync(join(stateDir, 'master.key'), 'not a key\n');
    expect(() => resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined })).toThrow(/MOAT_MASTER_KEY: .*master.key does not hold a valid value/);
  });

  it('when a secret file is readable by others, then it is tightened to 0600', () => {
    resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    chmodSync(join(stateDir, 'bootstrap-token'), 0o644);
    resolveSecrets({ production: false, stateDir, masterKey: undefined, bootstrapToken: undefined });
    expect(statSync(join(stateDir, 'bootstrap-token')).mode & 0o777).toBe(0o600);
  });
});
