import { describe, expect, it } from 'vitest';
import { parseSenders, senderProcessName, SendersSyntaxError } from './senders.js';

describe('parseSenders', () => {
  it('when given the default, then it is one sender of pool default on 127.0.0.1', () => {
    expect(parseSenders('default=127.0.0.1')).toEqual([{ pool: 'default', sourceIp: '127.0.0.1' }]);
  });

  it('when a pool has several addresses, then each is its own sender, in order', () => {
    expect(parseSenders(' default=127.0.1.1, default=127.0.1.2 ,bulk=127.0.2.1,')).toEqual([
      { pool: 'default', sourceIp: '127.0.1.1' },
      { pool: 'default', sourceIp: '127.0.1.2' },
      { pool: 'bulk', sourceIp: '127.0.2.1' },
    ]);
  });

  it('when an address is IPv6, then it is accepted', () => {
    expect(parseSenders('v6=::1')).toEqual([{ pool: 'v6', sourceIp: '::1' }]);
  });

  it('when entries are malformed, then every problem is named at once', () => {
    let error: unknown;
    try {
      parseSenders('default=127.0.0.1,nopool,Bad.Pool=127.0.0.2,x=not-an-ip,default=127.0.0.1');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SendersSyntaxError);
    const problems = (error as SendersSyntaxError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/"nopool" is not pool=sourceIp/);
    expect(problems.join('\n')).toMatch(/pool "Bad.Pool" must match/);
    expect(problems.join('\n')).toMatch(/"not-an-ip" \(pool x\) is not an IP address/);
    expect(problems.join('\n')).toMatch(/"default=127.0.0.1" is listed twice/);
  });

  it('when the value is empty, then it is an error', () => {
    expect(() => parseSenders(' , ')).toThrow(/at least one/);
  });

  it('when a pool name would change an AMQP binding (dot, wildcard), then it is refused', () => {
    expect(() => parseSenders('a.b=127.0.0.1')).toThrow(SendersSyntaxError);
    expect(() => parseSenders('a*=127.0.0.1')).toThrow(SendersSyntaxError);
    expect(() => parseSenders('#=127.0.0.1')).toThrow(SendersSyntaxError);
  });
});

describe('senderProcessName', () => {
  it('when the pool has one address, then the name is the pool; with several, the address is added', () => {
    const all = parseSenders('default=127.0.1.1,bulk=127.0.2.1,bulk=127.0.2.2');
    expect(all.map((s) => senderProcessName(s, all))).toEqual(['sender:default', 'sender:bulk@127.0.2.1', 'sender:bulk@127.0.2.2']);
  });
});
