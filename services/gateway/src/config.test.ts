import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { configSchema } from './config.js';

describe('gateway configuration: digest links', () => {
  it('when digests are on (MOAT_DIGEST_INTERVAL_MS) and the link key is missing, then the config error names MOAT_DIGEST_LINK_KEY', () => {
    expect(() => loadConfig(configSchema, { MOAT_DIGEST_INTERVAL_MS: '3600000' })).toThrow(/MOAT_DIGEST_LINK_KEY: required when MOAT_DIGEST_INTERVAL_MS is set/);
  });

  it('when digests are off, then no key is needed; a key that is too short is refused', () => {
    expect(loadConfig(configSchema, {}).MOAT_DIGEST_LINK_KEY).toBeUndefined();
    expect(loadConfig(configSchema, { MOAT_DIGEST_INTERVAL_MS: '3600000', MOAT_DIGEST_LINK_KEY: randomBytes(32).toString('base64') }).MOAT_DIGEST_LINK_KEY).toBeDefined();
    expect(() => loadConfig(configSchema, { MOAT_DIGEST_LINK_KEY: randomBytes(16).toString('base64') })).toThrow(/MOAT_DIGEST_LINK_KEY: must be at least 32 bytes/);
    const previous = `${randomBytes(32).toString('base64')},${randomBytes(32).toString('base64')}`;
    expect(loadConfig(configSchema, { MOAT_DIGEST_LINK_PREVIOUS_KEYS: previous }).MOAT_DIGEST_LINK_PREVIOUS_KEYS).toBe(previous);
    expect(() => loadConfig(configSchema, { MOAT_DIGEST_LINK_PREVIOUS_KEYS: `${randomBytes(32).toString('base64')},short` })).toThrow(/MOAT_DIGEST_LINK_PREVIOUS_KEYS: must be a comma-separated list of keys/);
  });
});
