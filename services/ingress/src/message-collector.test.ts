import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { collectMessage, type CollectLimits, type DataStream } from './message-collector.js';

/** Limits that only the size matters for (content limits out of the way). */
const upTo = (maxBytes: number): CollectLimits => ({ maxBytes, maxLineBytes: 100_000, maxHeaderBytes: 100_000 });

describe('collectMessage', () => {
  it('when the stream ends, then the bytes and their sha256 are exactly what was written', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.write(Buffer.from('Subject: a\r\n\r\n'));
    stream.end(Buffer.from('.dot\r\n\x01\xff\r\n', 'latin1'));
    const raw = Buffer.concat([Buffer.from('Subject: a\r\n\r\n'), Buffer.from('.dot\r\n\x01\xff\r\n', 'latin1')]);
    expect(await done).toEqual({ raw, size: raw.length, sha256: createHash('sha256').update(raw).digest('hex'), refusal: null });
  });

  it('when the message goes over the limit, then it is read to its end but nothing is kept', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(10));
    stream.write(Buffer.alloc(8));
    stream.write(Buffer.alloc(8));
    stream.end(Buffer.alloc(8));
    expect(await done).toMatchObject({ refusal: 'oversize', size: 24, raw: Buffer.alloc(0) });
  });

  it('when a bare LF arrives at the start of a chunk, then the message is flagged while it streams in', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.write(Buffer.from('Subject: a\r\n\r\nbody\r\n'));
    stream.end(Buffer.from('\n.\nMAIL FROM:<x@y>\r\n'));
    expect(await done).toMatchObject({ refusal: 'bare-line-ending', raw: Buffer.alloc(0), sha256: '' });
  });

  it('when a CRLF is split across chunks, then the message is clean', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.write(Buffer.from('Subject: a\r'));
    stream.write(Buffer.from('\n\r\nbody\r'));
    stream.end(Buffer.from('\n'));
    expect(await done).toMatchObject({ refusal: null, size: 20 });
  });

  it('when the stream ends with a lone CR, then the message is flagged', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.write(Buffer.from('Subject: a\r\n\r\n'));
    stream.end(Buffer.from('body\r'));
    expect((await done).refusal).toBe('bare-line-ending');
  });

  it('when an oversize message also has bare line endings, then it is oversize (552 wins)', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(10));
    stream.write(Buffer.from('a\nb\rc'));
    stream.end(Buffer.alloc(16));
    expect((await done).refusal).toBe('oversize');
  });

  it('when smtp-server flags the stream as oversize, then the message is oversize', async () => {
    const stream: PassThrough & DataStream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.sizeExceeded = true;
    stream.end(Buffer.alloc(4));
    expect((await done).refusal).toBe('oversize');
  });

  it('when the content breaks a limit, then the refusal names it and nothing is kept', async () => {
    const limits: CollectLimits = { maxBytes: 1_000, maxLineBytes: 8, maxHeaderBytes: 12 };
    const cases: Array<[string, string]> = [
      ['Subject: too long a header\r\n\r\nbody\r\n', 'header-too-large'],
      ['S: a\r\n\r\nnul\x00\r\n', 'nul'],
      ['S: a\r\n\r\n0123456789\r\n', 'line-too-long'],
    ];
    for (const [text, refusal] of cases) {
      const stream = new PassThrough();
      const done = collectMessage(stream, limits);
      stream.end(Buffer.from(text, 'latin1'));
      expect(await done, refusal).toEqual({ raw: Buffer.alloc(0), size: text.length, sha256: '', refusal });
    }
  });

  it('when the client goes away in mid-message, then collecting fails', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.write(Buffer.from('partial'));
    stream.destroy(Object.assign(new Error('Connection closed before the message was received in full'), { code: 'ECONNECTION' }));
    await expect(done).rejects.toMatchObject({ code: 'ECONNECTION' });
  });

  it('when the stream is destroyed without an error, then collecting fails too', async () => {
    const stream = new PassThrough();
    const done = collectMessage(stream, upTo(1_000));
    stream.destroy();
    await expect(done).rejects.toThrow('closed before the end');
  });
});
