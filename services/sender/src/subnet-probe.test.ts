import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer } from '@moat/testkit';
import { probeSmtp, type ProbeOptions, type ProbeTarget } from './subnet-probe.js';

// Probes against real SMTP servers on 127.0.0.1, from loopback source addresses that stand for
// sending ranges (all of 127.0.0.0/8 is local on Linux): 127.0.1.0/24 allowed, 127.0.2.0/24
// refused at RCPT with 550 5.7.1, and the outsider 127.0.9.1 refused at connect (554 banner).

const allowed = '127.0.1.1';
const blocked = '127.0.2.1';
const outsider = '127.0.9.1';
const inRange = (ip: string, prefix: string) => ip.startsWith(prefix);

const lockedDown = new CustomerServer({
  allowClient: (ip) => inRange(ip, '127.0.1.') || inRange(ip, '127.0.2.'),
  rcptReply: (_rcpt, client) => (inRange(client.remoteAddress, '127.0.2.') ? [550, '5.7.1 Client host rejected: your address is not allowed to relay here'] : null),
});
const withTls = new CustomerServer({ starttls: true });
const servers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  await lockedDown.start();
  await withTls.start();
});

afterAll(async () => {
  await lockedDown.stop();
  await withTls.stop();
  await Promise.all(servers.map((s) => s.close()));
});

const target = (port: number): ProbeTarget => ({ address: '127.0.0.1', port, servername: undefined });
const options = (localAddress: string, extra: Partial<ProbeOptions> = {}): ProbeOptions => ({
  localAddress,
  ehloName: 'probe.moat.test',
  recipient: 'postmaster@acme.example',
  stepTimeoutMs: 5_000,
  deadline: Date.now() + 20_000,
  ...extra,
});
const sent = (o: { transcript: Array<{ from: string; text: string }> }) => o.transcript.filter((l) => l.from === 'client').map((l) => l.text);

/**
 * A server following a script: `greeting` on connect, then `answer(line)` for each command line
 * (a string is written as is, null writes nothing, 'close' hangs up).
 */
async function scripted(greeting: string | null, answer: (line: string, socket: net.Socket) => string | null | 'close'): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (greeting !== null) socket.write(greeting);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        const out = answer(line, socket);
        if (out === 'close') socket.destroy();
        else if (out !== null) socket.write(out);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
  return (server.address() as net.AddressInfo).port;
}

/** The happy path of a scripted server, with `override` deciding some commands. */
const plainSmtp = (override: (line: string) => string | null | undefined = () => undefined) => (line: string) => {
  const special = override(line);
  if (special !== undefined) return special;
  if (/^EHLO /i.test(line)) return '250-mx.test\r\n250 8BITMIME\r\n';
  if (/^HELO /i.test(line)) return '250 mx.test\r\n';
  if (/^MAIL FROM:/i.test(line)) return '250 2.1.0 Ok\r\n';
  if (/^RCPT TO:/i.test(line)) return '250 2.1.5 Ok\r\n';
  if (/^QUIT/i.test(line)) return '221 2.0.0 Bye\r\n';
  return '502 5.5.2 Error: command not recognized\r\n';
};

describe('probeSmtp against a server locked down to some ranges', () => {
  it('when the source address is in an allowed range, then the probe passes with the RCPT reply, and nothing is ever delivered', async () => {
    const before = lockedDown.rcpts.length;
    const o = await probeSmtp(target(lockedDown.port), options(allowed));
    expect(o).toMatchObject({ status: 'pass', failedStep: null, error: null, tls: false, sourceIp: allowed, remoteAddress: `127.0.0.1:${lockedDown.port}` });
    expect(o.reply).toMatchObject({ code: 250 });
    expect(sent(o)).toEqual(['EHLO probe.moat.test', 'MAIL FROM:<>', 'RCPT TO:<postmaster@acme.example>', 'QUIT']);
    expect(o.transcript[0]).toMatchObject({ from: 'note', text: `connected from ${allowed} to 127.0.0.1:${lockedDown.port}` });
    expect(o.transcript.some((l) => l.from === 'server' && l.text.startsWith('220 '))).toBe(true);
    expect(o.latencyMs).toBeGreaterThanOrEqual(0);
    expect(lockedDown.rcpts.slice(before)).toEqual([{ remoteAddress: allowed, mailFrom: '', rcpt: 'postmaster@acme.example', accepted: true }]);
    expect(lockedDown.dataCommands).toBe(0);
    expect(lockedDown.transactions).toHaveLength(0);
  });

  it('when the source address is refused at RCPT with 550 5.7.1, then the probe fails at rcpt with the exact reply', async () => {
    const o = await probeSmtp(target(lockedDown.port), options(blocked));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'rcpt', sourceIp: blocked, reply: { code: 550, enhanced: '5.7.1', text: 'Client host rejected: your address is not allowed to relay here' } });
    expect(o.error).toContain('RCPT TO:<postmaster@acme.example> refused with 550');
    expect(sent(o)).toEqual(['EHLO probe.moat.test', 'MAIL FROM:<>', 'RCPT TO:<postmaster@acme.example>', 'QUIT']);
    expect(lockedDown.dataCommands).toBe(0);
  });

  it('when the outsider is refused at connect (554 banner), then the probe fails at banner and sends nothing but QUIT', async () => {
    const o = await probeSmtp(target(lockedDown.port), options(outsider));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'banner', sourceIp: outsider, reply: { code: 554 } });
    expect(o.reply!.text).toContain('Access denied');
    expect(sent(o).filter((c) => c !== 'QUIT')).toEqual([]);
  });
});

describe('probeSmtp: TLS', () => {
  it('when the server offers STARTTLS, then the probe upgrades, says EHLO again (RFC 3207 §4.2) and reports tls', async () => {
    const o = await probeSmtp(target(withTls.port), options(allowed));
    expect(o).toMatchObject({ status: 'pass', tls: true });
    expect(sent(o)).toEqual(['EHLO probe.moat.test', 'STARTTLS', 'EHLO probe.moat.test', 'MAIL FROM:<>', 'RCPT TO:<postmaster@acme.example>', 'QUIT']);
    expect(o.transcript.some((l) => l.from === 'note' && /^TLS established: TLSv1\.[23]/.test(l.text))).toBe(true);
    expect(withTls.dataCommands).toBe(0);
  });

  it('when the TLS handshake breaks, then the probe tries again without STARTTLS, as deliveries do', async () => {
    let connections = 0;
    const port = await scripted('220 mx.test ESMTP\r\n', (line, socket) => {
      if (/^EHLO /.test(line)) {
        connections++;
        return '250-mx.test\r\n250 STARTTLS\r\n';
      }
      if (line === 'STARTTLS') {
        // Agree, then answer the ClientHello with plaintext: the handshake fails.
        socket.write('220 2.0.0 Ready to start TLS\r\n');
        socket.once('data', () => socket.end('this is not TLS\r\n'));
        return null;
      }
      return plainSmtp()(line);
    });
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'pass', tls: false });
    expect(connections).toBe(2);
    expect(o.transcript.some((l) => l.from === 'note' && l.text.startsWith('TLS handshake failed'))).toBe(true);
    expect(sent(o)).toEqual(['EHLO probe.moat.test', 'STARTTLS', 'EHLO probe.moat.test', 'MAIL FROM:<>', 'RCPT TO:<postmaster@acme.example>', 'QUIT']);
  });

  it('when the server refuses STARTTLS, then the probe continues in plaintext', async () => {
    const port = await scripted('220 mx.test\r\n', plainSmtp((l) => (/^EHLO /.test(l) ? '250-mx.test\r\n250 STARTTLS\r\n' : l === 'STARTTLS' ? '454 4.7.0 TLS not available\r\n' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'pass', tls: false });
    expect(o.transcript.some((l) => l.text.startsWith('STARTTLS refused (454)'))).toBe(true);
  });
});

describe('probeSmtp: how a probe can fail', () => {
  it('when nothing listens on the port, then it fails at connect with the socket error', async () => {
    const port = await scripted(null, () => null);
    await servers.pop()!.close();
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'connect', reply: null, sourceIp: allowed });
    expect(o.error).toMatch(/ECONNREFUSED/);
  });

  it('when the server never greets, then it fails at banner after the step timeout', async () => {
    const port = await scripted(null, () => null);
    const o = await probeSmtp(target(port), options(allowed, { stepTimeoutMs: 300 }));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'banner', reply: null, error: 'no reply within 300 ms' });
    expect(o.latencyMs).toBeGreaterThanOrEqual(290);
  });

  it('when the check’s deadline is nearer than the step timeout, then the deadline bounds the step', async () => {
    const port = await scripted(null, () => null);
    const started = Date.now();
    const o = await probeSmtp(target(port), options(allowed, { stepTimeoutMs: 10_000, deadline: Date.now() + 400 }));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'banner' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('when the server does not know EHLO, then the probe says HELO (RFC 5321 §4.1.4) and goes on', async () => {
    const port = await scripted('220 old.test\r\n', plainSmtp((l) => (/^EHLO /.test(l) ? '502 5.5.1 Command not implemented\r\n' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o.status).toBe('pass');
    expect(sent(o).slice(0, 2)).toEqual(['EHLO probe.moat.test', 'HELO probe.moat.test']);
  });

  it('when the server refuses EHLO by policy, then the probe fails at ehlo with the reply', async () => {
    const port = await scripted('220 mx.test\r\n', plainSmtp((l) => (/^EHLO /.test(l) ? '550 5.7.1 Go away\r\n' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'ehlo', reply: { code: 550, enhanced: '5.7.1', text: 'Go away' } });
  });

  it('when the server refuses MAIL FROM:<> with 421, then the probe fails at mail', async () => {
    const port = await scripted('220 mx.test\r\n', plainSmtp((l) => (/^MAIL FROM:/.test(l) ? '421 4.7.0 Try again later\r\n' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'mail', reply: { code: 421, enhanced: '4.7.0' } });
    expect(sent(o)).not.toContain('RCPT TO:<postmaster@acme.example>');
  });

  it('when the server hangs up after MAIL, then the probe fails at rcpt without a reply', async () => {
    const port = await scripted('220 mx.test\r\n', plainSmtp((l) => (/^RCPT TO:/.test(l) ? 'close' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'rcpt', reply: null });
    expect(o.error).toContain('closed the connection');
  });

  it('when the server does not speak SMTP, then the probe fails at banner naming the violation', async () => {
    const port = await scripted('SSH-2.0-OpenSSH_9.2\r\n', () => null);
    const o = await probeSmtp(target(port), options(allowed));
    expect(o).toMatchObject({ status: 'fail', failedStep: 'banner' });
    expect(o.error).toContain('broke the SMTP protocol');
  });

  it('when the server replies with control characters, then they are escaped in the reply and the transcript', async () => {
    const port = await scripted('220 mx.test\r\n', plainSmtp((l) => (/^RCPT TO:/.test(l) ? '550 5.7.1 no\u0000\u001b[31m\r\n' : undefined)));
    const o = await probeSmtp(target(port), options(allowed));
    expect(o.reply).toEqual({ code: 550, enhanced: '5.7.1', text: 'no\\x00\\x1b[31m' });
    expect(o.transcript.some((l) => l.text === '550 5.7.1 no\\x00\\x1b[31m')).toBe(true);
  });

  it('when the source address is not an address of this host, then it is an error on our side, not a fail', async () => {
    // 192.0.2.0/24 (TEST-NET-1) is never local: the bind fails before any packet leaves.
    const o = await probeSmtp(target(lockedDown.port), options('192.0.2.1'));
    expect(o).toMatchObject({ status: 'error', failedStep: 'connect', reply: null });
    expect(o.error).toContain('the source address 192.0.2.1 cannot be used');
  });

  it('when the recipient could smuggle a command, then nothing is sent', async () => {
    const before = lockedDown.rcpts.length;
    const o = await probeSmtp(target(lockedDown.port), options(allowed, { recipient: 'postmaster@acme.example>\r\nDATA' }));
    expect(o.status).toBe('error');
    expect(sent(o)).toEqual([]);
    expect(lockedDown.rcpts.length).toBe(before);
  });
});
