import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWithSpamd, parseSpamdReply, SpamdUnavailable } from './spamd.js';

// Protocol edge cases against a tiny TCP server standing in for spamd; the real spamd is
// exercised end to end in tests/spamd.test.ts.

const message = Buffer.from('From: <alice@sender.example>\r\nSubject: hi\r\n\r\nhello\r\n');
let server: net.Server | null = null;

/** A server that reads the request (head and body) and answers with `respond`. */
async function fakeSpamd(respond: (socket: net.Socket, request: Buffer) => void): Promise<{ port: number; requests: Buffer[] }> {
  const requests: Buffer[] = [];
  server = net.createServer((socket) => {
    let data = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const head = data.indexOf('\r\n\r\n');
      const length = /Content-length: (\d+)/i.exec(data.toString('latin1'));
      if (head !== -1 && length && data.length >= head + 4 + Number(length[1])) {
        requests.push(data);
        respond(socket, data);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, requests };
}

afterEach(async () => {
  await new Promise((r) => (server ? server.close(r) : r(null)));
  server = null;
});

const reply = (text: string) => (socket: net.Socket) => socket.end(text);

describe('checkWithSpamd', () => {
  it('when spamd answers, then the request was SYMBOLS SPAMC/1.5 with the exact length and the message, and the verdict is read', async () => {
    const fake = await fakeSpamd(reply('SPAMD/1.1 0 EX_OK\r\nContent-length: 24\r\nSpam: True ; 1003.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE,NO_RELAYS'));
    const result = await checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 2_000 });
    expect(result).toEqual({ isSpam: true, score: 1003.3, threshold: 5, symbols: ['GTUBE', 'MISSING_DATE', 'NO_RELAYS'] });
    expect(fake.requests[0]!.equals(Buffer.concat([Buffer.from(`SYMBOLS SPAMC/1.5\r\nContent-length: ${message.length}\r\n\r\n`), message]))).toBe(true);
  });

  it('when spamd answers with an error code, then it is unavailable with the code in the reason', async () => {
    const fake = await fakeSpamd(reply('SPAMD/1.0 76 Bad header line: (EOF)\r\n'));
    await expect(checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 2_000 })).rejects.toThrow('spamd: error 76 Bad header line: (EOF)');
  });

  it('when spamd closes without a word, then it is unavailable, never a pass', async () => {
    const fake = await fakeSpamd((socket) => socket.end());
    await expect(checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 2_000 })).rejects.toThrow(/closed the connection without a verdict/);
  });

  it('when the reply is larger than the bound, then it is not read and spamd is unavailable', async () => {
    const fake = await fakeSpamd(reply(`SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.1 / 5.0\r\n\r\n${'RULE,'.repeat(4_000)}`));
    await expect(checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 2_000, maxResponseBytes: 1_024 })).rejects.toThrow(/larger than 1024 bytes/);
  });

  it('when spamd does not answer in time, then the exchange is abandoned and spamd is unavailable', async () => {
    const fake = await fakeSpamd(() => {
      // Never answers.
    });
    await expect(checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 300 })).rejects.toThrow(/no verdict within 300 ms/);
  });

  it('when nothing listens, then spamd is unavailable', async () => {
    const fake = await fakeSpamd(reply(''));
    await new Promise((r) => server!.close(r));
    server = null;
    await expect(checkWithSpamd(message, { host: '127.0.0.1', port: fake.port, timeoutMs: 2_000 })).rejects.toBeInstanceOf(SpamdUnavailable);
  });
});

describe('parseSpamdReply', () => {
  it('when the message is ham with no rules hit, then the verdict has no symbols', () => {
    expect(parseSpamdReply('SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; -0.5 / 5.0\r\n\r\n')).toEqual({ isSpam: false, score: -0.5, threshold: 5, symbols: [] });
  });

  it('when the Spam header is missing or the status line is not spamd\'s, then it is no verdict', () => {
    expect(() => parseSpamdReply('SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n')).toThrow(/without a Spam header/);
    expect(() => parseSpamdReply('HTTP/1.1 200 OK\r\n\r\n')).toThrow(/unexpected reply/);
  });
});
