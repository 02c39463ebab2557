import { describe, expect, it } from 'vitest';
import { checkCommand, type CommandContext } from './command-check.js';

const plain: CommandContext = { smtpUtf8: false, maxLineBytes: 2048 };
const utf8Transaction: CommandContext = { smtpUtf8: true, maxLineBytes: 2048 };

/** The verdict as `run`, or the reply line it answers with (and whether it closes). */
function judge(line: string | Buffer, ctx = plain): string {
  const v = checkCommand(typeof line === 'string' ? Buffer.from(line, 'utf8') : line, null, ctx);
  if (v.action === 'run') return 'run';
  return `${v.action === 'close' ? 'close ' : ''}${v.reply.responseCode} ${v.reply.message}`;
}

describe('checkCommand', () => {
  it('when the command is a known ASCII one, then it runs, whatever the case of the verb', () => {
    for (const line of ['EHLO client.test', 'helo client.test', 'MAIL FROM:<a@b.example> SIZE=10', 'RCPT TO:<c@d.example>', 'DATA', 'RSET', 'NOOP', 'QUIT', 'VRFY x', 'HELP', 'STARTTLS']) {
      expect(judge(line), line).toBe('run');
    }
  });

  it('when the verb is unknown or one smtp-server has but port 25 does not offer, then 500 5.5.1 and it counts as unknown', () => {
    for (const line of ['FOO', 'AUTH PLAIN AGFiYwBkZWY=', 'XCLIENT ADDR=1.2.3.4', 'WIZ secret', 'BDAT 10 LAST', '']) {
      expect(judge(line), line).toBe('500 5.5.1 Command not recognized');
      expect(checkCommand(Buffer.from(line), null, plain)).toMatchObject({ unknown: true });
    }
  });

  it('when the line is an HTTP request, then the connection is closed with 421 4.7.0', () => {
    expect(judge('POST / HTTP/1.1')).toBe('close 421 4.7.0 HTTP requests are not accepted here, closing connection');
    expect(judge('GET /index.html HTTP/1.0')).toMatch(/^close 421 /);
  });

  it('when the framer refused the line, then the reply names the fault', () => {
    expect(checkCommand(null, 'too-long', plain)).toMatchObject({ action: 'refuse', unknown: false, reply: { responseCode: 500, message: '5.5.2 Line too long (more than 2048 octets)' } });
    expect(checkCommand(null, 'bare-line-ending', plain)).toMatchObject({ reply: { responseCode: 500, message: expect.stringMatching(/^5\.5\.2 Command line with a bare CR or LF/) } });
    expect(checkCommand(null, 'nul', plain)).toMatchObject({ reply: { responseCode: 500, message: '5.5.2 Command line contains a NUL byte' } });
  });

  it('when MAIL or RCPT carries UTF-8 without SMTPUTF8, then 553 5.6.7', () => {
    expect(judge('MAIL FROM:<jörg@example.com>')).toBe('553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)');
    expect(judge('RCPT TO:<jörg@a.example>')).toBe('553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)');
  });

  it('when MAIL has SMTPUTF8, then its UTF-8 address runs, and RCPT in that transaction too', () => {
    expect(judge('MAIL FROM:<jörg@example.com> SMTPUTF8')).toBe('run');
    expect(judge('MAIL FROM:<jörg@example.com> BODY=8BITMIME smtputf8')).toBe('run');
    expect(judge('RCPT TO:<jörg@a.example>', utf8Transaction)).toBe('run');
  });

  it('when UTF-8 is allowed but the bytes are not UTF-8, then 501 5.5.2', () => {
    const latin1 = Buffer.from('MAIL FROM:<j\xf6rg@example.com> SMTPUTF8', 'latin1');
    expect(judge(latin1)).toBe('501 5.5.2 Command contains invalid UTF-8');
    // An overlong encoding of "/" and a lone surrogate are not UTF-8 either (RFC 3629 §3).
    expect(judge(Buffer.concat([Buffer.from('RCPT TO:<a'), Buffer.from([0xc0, 0xaf]), Buffer.from('@a.example>')]), utf8Transaction)).toBe('501 5.5.2 Command contains invalid UTF-8');
    expect(judge(Buffer.concat([Buffer.from('RCPT TO:<a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('@a.example>')]), utf8Transaction)).toBe('501 5.5.2 Command contains invalid UTF-8');
  });

  it('when SMTPUTF8 appears only inside the address, then it does not count as the parameter', () => {
    expect(judge('MAIL FROM:<smtputf8ö@example.com>')).toMatch(/^553 5\.6\.7 /);
  });

  it('when another command holds non-ASCII, then 501 5.5.2', () => {
    expect(judge('EHLO exämple.test')).toBe('501 5.5.2 Non-ASCII characters are allowed only in MAIL and RCPT with SMTPUTF8 (RFC 6531)');
    expect(judge('NOOP é', utf8Transaction)).toMatch(/^501 5\.5\.2 Non-ASCII/);
  });

  it('when AUTH comes on a submission port before STARTTLS, then 530 5.7.0 and it is not run; under TLS it runs; on the MX port it stays unknown', () => {
    expect(judge('AUTH PLAIN AGFiYwBkZWY=', { ...plain, auth: 'needs-tls' })).toBe('530 5.7.0 Must issue a STARTTLS command first');
    expect(checkCommand(Buffer.from('AUTH LOGIN'), null, { ...plain, auth: 'needs-tls' })).toMatchObject({ unknown: false });
    expect(judge('auth login', { ...plain, auth: 'allowed' })).toBe('run');
    expect(judge('AUTH LOGIN', { ...plain, auth: 'unknown' })).toBe('500 5.5.1 Command not recognized');
  });

  it('when a line answers an AUTH challenge, then it runs as it is (base64 or *), never as an unknown command; non-ASCII is refused', () => {
    const sasl = { ...plain, auth: 'allowed' as const, saslResponse: true };
    expect(judge('dXNlcm5hbWU=', sasl)).toBe('run');
    expect(judge('*', sasl)).toBe('run');
    expect(judge('bäd', sasl)).toMatch(/^501 5\.5\.2 /);
    expect(checkCommand(null, 'too-long', sasl)).toMatchObject({ action: 'refuse', unknown: false });
  });
});
