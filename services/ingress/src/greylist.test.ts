import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { decideGreylist, Greylist, greylistKey, greylistNetwork, greylistSender, type GreylistStore, type GreylistWrite } from './greylist.js';

const log = pino({ level: 'silent' });
const policy = { enabled: true, delaySeconds: 300, retryWindowHours: 48, passTtlDays: 35 };
const T = '11111111-1111-4111-8111-111111111111';
const t0 = Date.parse('2026-01-01T00:00:00Z');

describe('greylist triplet', () => {
  it('when clients share an IPv4 /24 or an IPv6 /64, then they share the triplet', () => {
    expect(greylistNetwork('192.0.2.17')).toBe('192.0.2.0/24');
    expect(greylistNetwork('::ffff:192.0.2.17')).toBe('192.0.2.0/24');
    expect(greylistNetwork('2001:db8:0:1::5')).toBe(greylistNetwork('2001:db8:0:1:ffff::9'));
    expect(greylistKey(T, '192.0.2.1', 'a@x.example', 'b@y.example')).toBe(greylistKey(T, '192.0.2.200', 'A@X.example', 'B@y.example'));
    expect(greylistKey(T, '192.0.2.1', 'a@x.example', 'b@y.example')).not.toBe(greylistKey(T, '192.0.3.1', 'a@x.example', 'b@y.example'));
  });

  it('when the sender carries a per-attempt token (VERP, BATV, tags), then the triplet ignores it', () => {
    expect(greylistSender('bounce-12345-678@List.example')).toBe('bounce-#-#@list.example');
    expect(greylistSender('alice+tag@x.example')).toBe('alice@x.example');
    expect(greylistSender('')).toBe('<>');
  });
});

describe('decideGreylist', () => {
  it('when the triplet is new, then it is refused and its first attempt remembered for the retry window (only if absent)', () => {
    expect(decideGreylist(null, t0, policy)).toEqual({ verdict: 'first', write: { value: String(t0), ttlMs: 48 * 3_600_000, onlyIfAbsent: true } });
  });

  it('when the retry comes before the delay, then it is refused again and nothing changes', () => {
    expect(decideGreylist(String(t0), t0 + 299_000, policy)).toEqual({ verdict: 'early', write: null });
  });

  it('when the retry comes after the delay, then it passes and the triplet is whitelisted for passTtlDays', () => {
    expect(decideGreylist(String(t0), t0 + 300_000, policy)).toEqual({ verdict: 'retried', write: { value: 'pass', ttlMs: 35 * 86_400_000, onlyIfAbsent: false } });
  });

  it('when the triplet is whitelisted, then it passes and the whitelisting is renewed', () => {
    expect(decideGreylist('pass', t0, policy)).toEqual({ verdict: 'whitelisted', write: { value: 'pass', ttlMs: 35 * 86_400_000, onlyIfAbsent: false } });
  });

  it('when the retry comes after the window (or the entry is unreadable), then it starts over', () => {
    expect(decideGreylist(String(t0), t0 + 49 * 3_600_000, policy).verdict).toBe('first');
    expect(decideGreylist('garbage', t0, policy)).toMatchObject({ verdict: 'first', write: { onlyIfAbsent: false } });
  });
});

describe('Greylist', () => {
  function memoryStore(): GreylistStore & { entries: Map<string, GreylistWrite> } {
    const entries = new Map<string, GreylistWrite>();
    return {
      entries,
      get: async (key) => entries.get(key)?.value ?? null,
      set: async (key, w) => {
        if (!(w.onlyIfAbsent && entries.has(key))) entries.set(key, w);
      },
    };
  }

  it('when a client retries after the delay, then the first attempt is greylisted and the retry passes', async () => {
    let now = t0;
    const store = memoryStore();
    const grey = new Greylist(store, { timeoutMs: 100, now: () => now }, log);
    expect(await grey.check(T, '192.0.2.1', 'a@x.example', 'b@y.example', policy)).toEqual({ result: 'greylisted', verdict: 'first' });
    now += 60_000;
    expect(await grey.check(T, '192.0.2.1', 'a@x.example', 'b@y.example', policy)).toEqual({ result: 'greylisted', verdict: 'early' });
    now += 300_000;
    expect(await grey.check(T, '192.0.2.2', 'a@x.example', 'b@y.example', policy)).toEqual({ result: 'pass', verdict: 'retried' });
    expect(await grey.check(T, '192.0.2.1', 'a@x.example', 'b@y.example', policy)).toEqual({ result: 'pass', verdict: 'whitelisted' });
  });

  it('when Redis does not answer, then the attempt passes (fails open)', async () => {
    const hung: GreylistStore = { get: () => new Promise(() => {}), set: async () => {} };
    const down: GreylistStore = { get: async () => Promise.reject(new Error('ECONNREFUSED')), set: async () => {} };
    expect(await new Greylist(hung, { timeoutMs: 30 }, log).check(T, '192.0.2.1', '', 'b@y.example', policy)).toEqual({ result: 'error' });
    expect(await new Greylist(down, { timeoutMs: 30 }, log).check(T, '192.0.2.1', '', 'b@y.example', policy)).toEqual({ result: 'error' });
  });
});
