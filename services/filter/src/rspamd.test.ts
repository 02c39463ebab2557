import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWithRspamd, parseRspamdReply, RspamdUnavailable, type RspamdEnvelope } from './rspamd.js';

// Protocol edge cases against a tiny HTTP server standing in for rspamd; the real rspamd is
// exercised end to end in tests/rspamd.test.ts.

const envelope: RspamdEnvelope = { ip: '203.0.113.5', helo: 'mx.sender.example', mailFrom: 'alice@sender.example', rcptTo: ['bob@customer.example', 'carol@customer.example'], queueId: 'm-1', hostname: 'mx.sender.example' };
const raw = Buffer.from('From: <alice@sender.example>\r\nSubject: hi\r\n\r\nhello\r\n');
const verdict = { is_skipped: false, score: 7.5, required_score: 15, action: 'add header', symbols: { BAYES_SPAM: { name: 'BAYES_SPAM', score: 5.1 }, MIME_GOOD: { name: 'MIME_GOOD', score: -0.1 } } };

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

let server: http.Server | null = null;

/** A server that records the request and answers with `respond`. */
async function fakeRspamd(respond: (res: http.ServerResponse, seen: Seen) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
      seen.push(s);
      respond(res, s);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(null)));
  server = null;
});

const json = (body: unknown) => (res: http.ServerResponse) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

describe('checkWithRspamd', () => {
  it('when rspamd answers, then the message went as the body of POST /checkv2 with the SMTP context as headers, one Rcpt per recipient', async () => {
    const fake = await fakeRspamd(json(verdict));
    const result = await checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000, password: 's3cret' });
    expect(result).toEqual({ score: 7.5, requiredScore: 15, action: 'add header', symbols: [{ name: 'BAYES_SPAM', score: 5.1 }, { name: 'MIME_GOOD', score: -0.1 }] });
    const req = fake.seen[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/checkv2');
    expect(req.body.equals(raw)).toBe(true);
    expect(req.headers).toMatchObject({ ip: '203.0.113.5', helo: 'mx.sender.example', from: 'alice@sender.example', 'queue-id': 'm-1', hostname: 'mx.sender.example', password: 's3cret' });
    const rcpts = req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i]!.toLowerCase() === 'rcpt').length;
    expect(rcpts).toBe(2);
    expect(req.rawHeaders.filter((v, i) => i % 2 === 1 && req.rawHeaders[i - 1]!.toLowerCase() === 'rcpt')).toEqual(['bob@customer.example', 'carol@customer.example']);
  });

  it('when the sender is the null reverse-path and there is no reverse DNS name or password, then From is <> and no Hostname or Password header is sent', async () => {
    const fake = await fakeRspamd(json(verdict));
    await checkWithRspamd(raw, { ...envelope, mailFrom: '', hostname: null }, { url: `${fake.url}/`, timeoutMs: 2_000 });
    expect(fake.seen[0]!.headers.from).toBe('<>');
    expect(fake.seen[0]!.headers.hostname).toBeUndefined();
    expect(fake.seen[0]!.headers.password).toBeUndefined();
  });

  it('when the HELO carries line breaks, then they cannot inject a header of their own', async () => {
    const fake = await fakeRspamd(json(verdict));
    await checkWithRspamd(raw, { ...envelope, helo: 'evil\r\nSettings-ID: skip' }, { url: fake.url, timeoutMs: 2_000 });
    expect(fake.seen[0]!.headers.helo).toBe('evil  Settings-ID: skip');
    expect(fake.seen[0]!.headers['settings-id']).toBeUndefined();
  });

  it('when the reply is not JSON, then rspamd is unavailable, never a pass', async () => {
    const fake = await fakeRspamd(json('{"score": 1, "act'));
    await expect(checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000 })).rejects.toThrow(/reply is not JSON/);
  });

  it('when the reply is JSON but no verdict (rspamd reports an error), then rspamd is unavailable and the reason carries its error', async () => {
    const fake = await fakeRspamd(json({ error: 'task timeout' }));
    const err = await checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RspamdUnavailable);
    expect((err as Error).message).toMatch(/not a verdict .*: task timeout$/);
  });

  it('when rspamd answers with an error status, then it is unavailable with the status in the reason', async () => {
    const fake = await fakeRspamd((res) => {
      res.writeHead(503);
      res.end('{"error":"overloaded"}');
    });
    await expect(checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000 })).rejects.toThrow(/HTTP 503/);
  });

  it('when the reply is larger than the bound, then it is not read and rspamd is unavailable', async () => {
    const fake = await fakeRspamd((res) => {
      res.writeHead(200);
      res.write(`{"score":1,"required_score":15,"action":"no action","symbols":{"X":{"score":0,"options":["${'a'.repeat(64 * 1024)}`);
      res.end('"]}}}');
    });
    await expect(checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000, maxResponseBytes: 16 * 1024 })).rejects.toThrow(/larger than 16384 bytes/);
  });

  it('when rspamd does not answer in time, then the request is abandoned and rspamd is unavailable', async () => {
    const fake = await fakeRspamd(() => {
      // Never answers.
    });
    const started = Date.now();
    await expect(checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 300 })).rejects.toThrow(/no verdict within 300 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('when nothing listens, then rspamd is unavailable', async () => {
    const fake = await fakeRspamd(json(verdict));
    server!.close();
    await expect(checkWithRspamd(raw, envelope, { url: fake.url, timeoutMs: 2_000 })).rejects.toBeInstanceOf(RspamdUnavailable);
  });
});

describe('parseRspamdReply', () => {
  it('when the reply has no symbols, then the verdict has an empty list', () => {
    expect(parseRspamdReply('{"score":-0.5,"required_score":15,"action":"no action"}')).toEqual({ score: -0.5, requiredScore: 15, action: 'no action', symbols: [] });
  });

  it('when the score is missing or not a number, then it is no verdict', () => {
    expect(() => parseRspamdReply('{"required_score":15,"action":"reject"}')).toThrow(RspamdUnavailable);
    expect(() => parseRspamdReply('{"score":"high","required_score":15,"action":"reject"}')).toThrow(/score/);
    expect(() => parseRspamdReply('null')).toThrow(RspamdUnavailable);
  });
});
