import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@moat/testkit';
import { startHarness, uniq, type Harness } from '../../router/test/harness.js';

// Opportunistic STARTTLS (RFC 3207, RFC 7435) against a small scripted SMTP server, because the
// testkit's CustomerServer has STARTTLS switched off: with a working upgrade the transaction is
// encrypted (with a self-signed certificate: not verified, as MTAs do); with a broken handshake
// the sender reconnects in cleartext and still delivers.

interface ScriptedTransaction {
  secure: boolean;
  rcpts: string[];
  data: string;
}

class ScriptedServer {
  connections = 0;
  readonly transactions: ScriptedTransaction[] = [];
  private readonly server: net.Server;
  port = 0;

  constructor(mode: 'tls' | 'broken-tls', credentials: { key: Buffer; cert: Buffer }) {
    this.server = net.createServer((raw) => {
      this.connections++;
      let socket: net.Socket = raw;
      let secure = false;
      let buf = '';
      let inData = false;
      let rcpts: string[] = [];
      const write = (s: string) => socket.write(`${s}\r\n`);
      const onData = (chunk: Buffer) => {
        buf += chunk.toString('latin1');
        for (;;) {
          if (inData) {
            const end = buf.indexOf('\r\n.\r\n');
            if (end < 0) return;
            this.transactions.push({ secure, rcpts, data: buf.slice(0, end + 2) });
            buf = buf.slice(end + 5);
            inData = false;
            write('250 2.0.0 Ok: queued');
            continue;
          }
          const i = buf.indexOf('\r\n');
          if (i < 0) return;
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const verb = line.split(' ')[0]!.toUpperCase();
          if (verb === 'EHLO') write(secure ? '250-scripted.test\r\n250 8BITMIME' : '250-scripted.test\r\n250 STARTTLS');
          else if (verb === 'STARTTLS') {
            write('220 2.0.0 Ready to start TLS');
            raw.removeListener('data', onData);
            buf = '';
            if (mode === 'broken-tls') {
              raw.end('this is not a TLS handshake\r\n');
              return;
            }
            const secured = new tls.TLSSocket(raw, { isServer: true, key: credentials.key, cert: credentials.cert });
            secured.on('error', () => {});
            secured.on('data', onData);
            socket = secured;
            secure = true;
            return;
          } else if (verb === 'MAIL') {
            rcpts = [];
            write('250 2.1.0 Ok');
          } else if (verb === 'RCPT') {
            rcpts.push(/<(.*)>/.exec(line)?.[1] ?? '');
            write('250 2.1.5 Ok');
          } else if (verb === 'DATA') {
            inData = true;
            write('354 End data with <CR><LF>.<CR><LF>');
          } else if (verb === 'RSET' || verb === 'NOOP') write('250 2.0.0 Ok');
          else if (verb === 'QUIT') {
            write('221 2.0.0 Bye');
            socket.end();
          } else write('502 5.5.2 Error: command not recognized');
        }
      };
      raw.on('data', onData);
      raw.on('error', () => {});
      write('220 scripted.test ESMTP');
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    this.server.close();
  }
}

let h: Harness;
let dir: string;
let credentials: { key: Buffer; cert: Buffer };
const servers: ScriptedServer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-starttls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=scripted.test', '-days', '1'], { stdio: 'ignore' });
  credentials = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  h = await startHarness();
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function deliverVia(server: ScriptedServer) {
  await server.start();
  servers.push(server);
  const d = `tls${uniq()}.example`;
  const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: server.port, priority: 10 }]);
  const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
  const result = await eventually(() => h.resultsFor(fed.messageId)[0]);
  return { fed, result, rcpt: `u@${d}` };
}

describe('opportunistic STARTTLS', () => {
  it('when the server offers STARTTLS with a self-signed certificate, then the transaction is encrypted and the result says tls', async () => {
    const server = new ScriptedServer('tls', credentials);
    const { fed, result, rcpt } = await deliverVia(server);
    expect(result.tls).toBe(true);
    expect(result.recipients[0]!.outcome).toBe('delivered');
    expect(server.transactions).toEqual([{ secure: true, rcpts: [rcpt], data: Buffer.concat([Buffer.from(fed.prependHeaders), fed.raw]).toString('latin1').replace(/^\./gm, '..') }]);
  });

  it('when the TLS handshake breaks, then the sender reconnects in cleartext and delivers', async () => {
    const server = new ScriptedServer('broken-tls', credentials);
    const { result, rcpt } = await deliverVia(server);
    expect(result.tls).toBe(false);
    expect(result.recipients[0]!.outcome).toBe('delivered');
    expect(server.connections).toBe(2);
    expect(server.transactions.map((t) => [t.secure, t.rcpts])).toEqual([[false, [rcpt]]]);
  });
});
