import { describe, expect, it } from 'vitest';
import { mutate, normaliseLineEndings, operatorNames, operators, prng } from './mutate.js';

const corpus = [
  Buffer.from('From: a@x\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n'),
  Buffer.from('From: b@y\r\nSubject: plain\r\n\r\nbody line\r\n'),
];

describe('MIME mutations', () => {
  it('when the seed is the same, then the mutations are the same (a failure can be replayed)', () => {
    const a = Array.from({ length: 50 }, ((r) => () => mutate(corpus, r))(prng(42)));
    const b = Array.from({ length: 50 }, ((r) => () => mutate(corpus, r))(prng(42)));
    expect(a.map((m) => m.bytes.toString('hex'))).toEqual(b.map((m) => m.bytes.toString('hex')));
    const c = Array.from({ length: 50 }, ((r) => () => mutate(corpus, r))(prng(43)));
    expect(c.map((m) => m.bytes.toString('hex'))).not.toEqual(a.map((m) => m.bytes.toString('hex')));
  });

  it('when mutated, then every message ends with CRLF and the operators applied are named', () => {
    const r = prng(7);
    for (let i = 0; i < 200; i++) {
      const m = mutate(corpus, r);
      expect(m.bytes.subarray(-2).toString()).toBe('\r\n');
      expect(m.applied.every((op) => operatorNames.includes(op))).toBe(true);
    }
  });

  it('when nesting deeply, then the message holds that many multipart levels', () => {
    const out = operators.deepNesting!(corpus[1]!, prng(1), corpus[0]!).toString();
    expect((out.match(/multipart\/mixed; boundary="n\d+"/g) ?? []).length).toBeGreaterThanOrEqual(10);
  });

  it('when line endings are normalised, then bare CR and bare LF become CRLF and CRLF stays', () => {
    expect(normaliseLineEndings(Buffer.from('a\nb\rc\r\nd\r')).toString()).toBe('a\r\nb\r\nc\r\nd\r\n');
  });
});
