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

describe('ingress config: outbound relay', () => {
  it('when nothing is set, then submission listens on 2587, implicit TLS on 2465, and the limits have their defaults', () => {
    const c = loadConfig(configSchema, key);
    expect([c.MOAT_SUBMISSION_PORT, c.MOAT_SUBMISSIONS_PORT, c.MOAT_OUTBOUND_RATE_LIMIT, c.MOAT_OUTBOUND_RATE_WINDOW_MS, c.MOAT_SMTP_AUTH_MAX_FAILURES]).toEqual([2587, 2465, 300, 60_000, 10]);
  });

  it('when a submission port is -1, then the listener is off; when two fixed ports collide, then the error names the variable', () => {
    expect(loadConfig(configSchema, { ...key, MOAT_SUBMISSION_PORT: '-1', MOAT_SUBMISSIONS_PORT: '-1' }).MOAT_SUBMISSION_PORT).toBe(-1);
    expect(() => loadConfig(configSchema, { ...key, MOAT_SUBMISSION_PORT: '0', MOAT_SUBMISSIONS_PORT: '0', MOAT_SMTP_PORT: '0' })).not.toThrow();
    expect(() => loadConfig(configSchema, { ...key, MOAT_SUBMISSION_PORT: '2525' })).toThrow(/MOAT_SUBMISSION_PORT/);
    expect(() => loadConfig(configSchema, { ...key, MOAT_OUTBOUND_RATE_LIMIT: '0' })).toThrow(/MOAT_OUTBOUND_RATE_LIMIT/);
  });
});

describe('ingress config: SMTP-time checks', () => {
  it('when nothing is set, then rate limits are on with generous defaults, DNSBL is off and nothing is exempt', () => {
    const c = loadConfig(configSchema, key);
    expect([c.MOAT_INGRESS_RATE_LIMITS, c.MOAT_INGRESS_RATE_WINDOW_MS, c.MOAT_INGRESS_RATE_CONNECTIONS, c.MOAT_INGRESS_RATE_MESSAGES, c.MOAT_INGRESS_RATE_RECIPIENTS]).toEqual([true, 60_000, 600, 1_200, 6_000]);
    expect([c.MOAT_INGRESS_DNSBL_ZONES, c.MOAT_INGRESS_EXEMPT_CIDRS, c.MOAT_INGRESS_RECIPIENT_DELIMITER, c.MOAT_INGRESS_MAILBOX_CACHE_MS]).toEqual([[], [], '+', 30_000]);
  });

  it('when zones and exempt ranges are set, then they are parsed and normalised', () => {
    const c = loadConfig(configSchema, { ...key, MOAT_INGRESS_DNSBL_ZONES: 'zen.example=127.0.0.2,127.0.0.3,bl.example', MOAT_INGRESS_EXEMPT_CIDRS: '2001:DB8:0001::/48, 198.51.100.0/24', MOAT_INGRESS_RATE_LIMITS: 'false' });
    expect(c.MOAT_INGRESS_DNSBL_ZONES).toEqual([
      { zone: 'zen.example', codes: ['127.0.0.2', '127.0.0.3'] },
      { zone: 'bl.example', codes: [] },
    ]);
    expect(c.MOAT_INGRESS_EXEMPT_CIDRS).toEqual(['2001:db8:1::/48', '198.51.100.0/24']);
    expect(c.MOAT_INGRESS_RATE_LIMITS).toBe(false);
  });

  it('when a zone, a range or the delimiter is wrong, then the error names the variable and the value', () => {
    expect(() => loadConfig(configSchema, { ...key, MOAT_INGRESS_DNSBL_ZONES: 'bl.example,127.0.0.2' })).toThrow(/MOAT_INGRESS_DNSBL_ZONES.*127\.0\.0\.2/s);
    expect(() => loadConfig(configSchema, { ...key, MOAT_INGRESS_EXEMPT_CIDRS: '198.51.100.1/24' })).toThrow(/MOAT_INGRESS_EXEMPT_CIDRS.*host bits/s);
    expect(() => loadConfig(configSchema, { ...key, MOAT_INGRESS_RECIPIENT_DELIMITER: 'a' })).toThrow(/MOAT_INGRESS_RECIPIENT_DELIMITER/);
  });
});
