import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eicar, eicarSignature, makeMessageWithAttachment, startClamd, type TestClamd } from '@moat/testkit';
import { ClamdUnavailable, parseClamdReply, scanWithClamd } from './clamd.js';

describe('parseClamdReply', () => {
  it('reads clean, found and error replies', () => {
    expect(parseClamdReply('stream: OK\0')).toEqual({ infected: false });
    expect(parseClamdReply('stream: Eicar-Signature FOUND\0')).toEqual({ infected: true, signature: 'Eicar-Signature' });
    expect(() => parseClamdReply('INSTREAM size limit exceeded. ERROR\0')).toThrow(ClamdUnavailable);
    expect(() => parseClamdReply('')).toThrow(/unexpected reply/);
  });
});

const withAttachment = (content: Buffer, name: string) => makeMessageWithAttachment({ from: 'a@sender.example', to: ['b@rcpt.example'], subject: 'invoice', body: 'see attached', attachment: { name, content } });

describe('scanWithClamd against a real clamd', () => {
  let clamd: TestClamd;
  beforeAll(async () => {
    clamd = await startClamd();
  }, 60_000);
  afterAll(async () => {
    await clamd?.stop();
  });

  it('finds EICAR in a base64 attachment and passes a clean message, in small chunks too', async () => {
    const opts = { host: '127.0.0.1', port: clamd.port, timeoutMs: 10_000 };
    expect(await scanWithClamd(withAttachment(eicar, 'eicar.com'), opts)).toEqual({ infected: true, signature: eicarSignature });
    expect(await scanWithClamd(withAttachment(eicar, 'eicar.com'), { ...opts, chunkBytes: 7 })).toEqual({ infected: true, signature: eicarSignature });
    expect(await scanWithClamd(withAttachment(Buffer.from('quarterly figures attached'), 'report.txt'), opts)).toEqual({ infected: false });
  });

  it('reports an unreachable scanner as unavailable, never as clean', async () => {
    await expect(scanWithClamd(Buffer.from('x'), { host: '127.0.0.1', port: 1, timeoutMs: 2_000 })).rejects.toBeInstanceOf(ClamdUnavailable);
  });
});
