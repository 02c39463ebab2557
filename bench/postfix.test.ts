import { describe, expect, it } from 'vitest';
import { mainCf, masterCf } from './postfix.js';

const options = { dir: '/var/tmp/moat-bench-postfix-x', port: 40025, relayDomain: 'bench1.example', sinkPort: 40026 };
const settings = (text: string) =>
  Object.fromEntries(
    text
      .split('\n')
      .map((l) => /^([a-z_]+) =(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!.trim()]),
  );

describe('private Postfix instance configuration', () => {
  it('keeps config, queue, data and log under its own directory', () => {
    const s = settings(mainCf(options));
    expect(s.config_directory).toBe('/var/tmp/moat-bench-postfix-x/etc');
    expect(s.queue_directory).toBe('/var/tmp/moat-bench-postfix-x/queue');
    expect(s.data_directory).toBe('/var/tmp/moat-bench-postfix-x/data');
    expect(s.maillog_file?.startsWith(s.maillog_file_prefixes!)).toBe(true);
  });

  it('relays only the bench domain, to the sink by a static route, with no local delivery', () => {
    const s = settings(mainCf(options));
    expect(s.relay_domains).toBe('bench1.example');
    expect(s.transport_maps).toBe('inline:{bench1.example=smtp:[127.0.0.1]:40026}');
    expect(s.mydestination).toBe('');
    expect(s.local_transport).toMatch(/^error:/);
    expect(s.mynetworks).toBe('127.0.0.0/8');
    expect(s.smtp_dns_support_level).toBe('disabled');
  });

  it('leaves the throughput knobs at their defaults', () => {
    const s = settings(mainCf(options));
    for (const knob of ['default_process_limit', 'in_flow_delay', 'max_use', 'default_destination_concurrency_limit', 'smtp_destination_concurrency_limit']) expect(s[knob]).toBeUndefined();
  });

  it('listens on the loopback high port only, never port 25, and chroots nothing', () => {
    const lines = masterCf(options).split('\n').filter((l) => /^\S/.test(l) && !l.startsWith('#'));
    const inet = lines.filter((l) => l.split(/\s+/)[1] === 'inet');
    expect(inet).toEqual([expect.stringMatching(/^127\.0\.0\.1:40025\s+inet\s.*smtpd$/)]);
    expect(lines.every((l) => l.split(/\s+/)[4] === 'n')).toBe(true);
    expect(lines.map((l) => l.split(/\s+/)[0])).not.toContain('local');
  });
});
