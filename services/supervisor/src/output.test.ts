import { describe, expect, it } from 'vitest';
import { LineSplitter, PrefixedOutput, linePrefix, prefixWidth, prettyLogLine } from './output.js';

describe('LineSplitter', () => {
  it('when chunks split lines anywhere, then whole lines come out', () => {
    const s = new LineSplitter();
    expect(s.push('one\ntw')).toEqual(['one']);
    expect(s.push('o\r\nthree')).toEqual(['two']);
    expect(s.push('')).toEqual([]);
    expect(s.flush()).toBe('three');
    expect(s.flush()).toBeNull();
  });

  it('when empty lines are written, then they are kept', () => {
    expect(new LineSplitter().push('a\n\nb\n')).toEqual(['a', '', 'b']);
  });
});

describe('linePrefix', () => {
  it('when names differ in length, then the bars line up', () => {
    const width = prefixWidth(['ingress', 'supervisor', 'sender:default']);
    expect(width).toBe(14);
    expect(linePrefix('ingress', width)).toBe('ingress        | ');
    expect(linePrefix('sender:default', width)).toBe('sender:default | ');
  });
});

describe('prettyLogLine', () => {
  it('when given a pino line, then it shows time, level, message and the other fields', () => {
    const time = new Date(2026, 0, 2, 3, 4, 5, 6).toISOString();
    const line = JSON.stringify({ level: 40, time, pid: 1, hostname: 'h', service: 'ingress', msg: 'slow client', remote: '127.0.0.1', ms: 12, tags: ['a'] });
    expect(prettyLogLine(line)).toEqual(['03:04:05.006 WARN  slow client remote=127.0.0.1 ms=12 tags=["a"]']);
  });

  it('when a field holds a stack trace, then it follows on its own lines', () => {
    const line = JSON.stringify({ level: 50, time: 0, msg: 'boom', err: 'Error: x\n    at f (a.ts:1)' });
    const out = prettyLogLine(line);
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/ERROR boom err=↓$/);
    expect(out.slice(1)).toEqual(['    Error: x', '        at f (a.ts:1)']);
  });

  it('when a line is not a pino object, then it is unchanged', () => {
    for (const line of ['plain text', '{not json}', '{"no":"level"}', '[1,2]', '']) expect(prettyLogLine(line)).toEqual([line]);
  });

  it('when a string value has spaces, then it is quoted', () => {
    expect(prettyLogLine(JSON.stringify({ level: 30, time: 0, msg: 'm', reason: 'two words' }))[0]).toMatch(/reason="two words"$/);
  });
});

describe('PrefixedOutput', () => {
  it('when a stream gets chunks, then each line is written once with the aligned prefix', () => {
    let written = '';
    const out = new PrefixedOutput({ write: (t: string) => (written += t) }, ['ingress', 'filter'], 'raw');
    const seen: string[] = [];
    const s = out.stream('filter', (l) => seen.push(l));
    s.write('a\nb');
    s.write(Buffer.from('c\n'));
    s.write('tail');
    s.end();
    expect(written).toBe('filter  | a\nfilter  | bc\nfilter  | tail\n');
    expect(seen).toEqual(['a', 'bc', 'tail']);
  });

  it('when a UTF-8 character is split across chunks, then it arrives whole', () => {
    let written = '';
    const out = new PrefixedOutput({ write: (t: string) => (written += t) }, ['x'], 'raw');
    const s = out.stream('x');
    const bytes = Buffer.from('é\n');
    s.write(bytes.subarray(0, 1));
    s.write(bytes.subarray(1));
    s.end();
    expect(written).toBe('x | é\n');
  });

  it('when pretty, then pino lines are rendered', () => {
    let written = '';
    const out = new PrefixedOutput({ write: (t: string) => (written += t) }, ['gateway'], 'pretty');
    out.line('gateway', JSON.stringify({ level: 30, time: 0, msg: 'listening', port: 8080 }));
    expect(written).toMatch(/^gateway \| \d\d:\d\d:\d\d\.000 INFO  listening port=8080\n$/);
  });
});
