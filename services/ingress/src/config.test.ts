import { describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { configSchema } from './config.js';
import { defaultSmtpLimits } from './smtp-limits.js';

const key = { MOAT_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };

describe('ingress config: SMTP limits', () => {
  it('when no limit is set, then each has its production default', () => {
    const c = loadConfig(configSchema, key);
    expect({
      maxClientsPerIp: c.MOAT_SMTP_MAX_CLIENTS_PER_IP,
      maxCommandLineBytes: c.MOAT_SMTP_MAX_COMMAND_LINE_BYTES,
      maxMessageLineBytes: c.MOAT_SMTP_MAX_MESSAGE_LINE_BYTES,
      maxHeaderBytes: c.MOAT_SMTP_MAX_HEADER_BYTES,
      maxCommands: c.MOAT_SMTP_MAX_COMMANDS,
      maxErrors: c.MOAT_SMTP_MAX_ERRORS,
      maxUnknownCommands: c.MOAT_SMTP_MAX_UNKNOWN_COMMANDS,
      idleTimeoutMs: c.MOAT_SMTP_IDLE_TIMEOUT_MS,
      dataTimeoutMs: c.MOAT_SMTP_DATA_TIMEOUT_MS,
    }).toEqual(defaultSmtpLimits);
    expect(defaultSmtpLimits).toMatchObject({ maxCommandLineBytes: 2_048, maxMessageLineBytes: 65_536, maxHeaderBytes: 262_144, idleTimeoutMs: 300_000, dataTimeoutMs: 600_000 });
  });

  it('when a limit is set, then it is used', () => {
    const c = loadConfig(configSchema, { ...key, MOAT_SMTP_MAX_ERRORS: '7', MOAT_SMTP_DATA_TIMEOUT_MS: '1500' });
    expect([c.MOAT_SMTP_MAX_ERRORS, c.MOAT_SMTP_DATA_TIMEOUT_MS]).toEqual([7, 1_500]);
  });

  it('when limits are below what the RFCs require or not numbers, then the error names every bad variable', () => {
    const bad = {
      ...key,
      MOAT_SMTP_MAX_COMMAND_LINE_BYTES: '100',
      MOAT_SMTP_MAX_MESSAGE_LINE_BYTES: '500',
      MOAT_SMTP_IDLE_TIMEOUT_MS: 'soon',
      MOAT_SMTP_MAX_CLIENTS_PER_IP: '0',
    };
    let message = '';
    try {
      loadConfig(configSchema, bad);
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of ['MOAT_SMTP_MAX_COMMAND_LINE_BYTES', 'MOAT_SMTP_MAX_MESSAGE_LINE_BYTES', 'MOAT_SMTP_IDLE_TIMEOUT_MS', 'MOAT_SMTP_MAX_CLIENTS_PER_IP']) expect(message).toContain(name);
  });
});
