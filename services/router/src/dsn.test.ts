import { describe, expect, it } from 'vitest';
import PostalMime from 'postal-mime';
import { asciiFieldValue, buildDsn, dsnStatus, foldField, headerSection, humanDuration, quotedPrintable, rfc5322Date, type DsnInput } from './dsn.js';

const original = Buffer.from(
  [
    'From: Alice <alice@sender.example>',
    'To: bob@customer.example, nobody@customer.example',
    'Subject: Quarterly figures',
    'Message-ID: <q3@sender.example>',
    'X-Folded: first part',
    '\tsecond part',
    '',
    'BODY-LINE: X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*',
    '',
  ].join('\r\n'),
);

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    dsnMessageId: '7d1f0c2e-5b7a-5c3e-9f10-2a3b4c5d6e7f',
    reportingMta: 'mx.moat.test',
    action: 'failed',
    to: 'alice@sender.example',
    originalMessageId: '0b7e3c1e-8f3a-4a5b-9c6d-1e2f3a4b5c6d',
    arrivalDate: new Date('2024-03-05T09:00:00Z'),
    date: new Date('2024-03-05T10:00:00Z'),
    willRetryUntil: null,
    recipients: [
      {
        rcpt: 'nobody@customer.example',
        fate: 'failed',
        reply: { code: 550, enhanced: '5.1.1', text: '<nobody@customer.example>: Recipient address rejected: User unknown in virtual mailbox table' },
        remoteMta: 'mail.customer.example',
        lastAttemptAt: new Date('2024-03-05T09:59:58Z'),
      },
    ],
    original: { prepended: 'Received: from client.test ([192.0.2.1]) by mx.moat.test with ESMTP id abc; Tue, 05 Mar 2024 09:00:00 +0000\r\n', raw: original },
    ...over,
  };
}

/** The fields of a message/delivery-status body: the per-message group, then one per recipient. */
function statusGroups(content: string): Record<string, string>[] {
  return content
    .replace(/\r\n/g, '\n')
    .replace(/\n[ \t]+/g, ' ')
    .split(/\n\n+/)
    .filter((g) => g.trim().length > 0)
    .map((g) => Object.fromEntries(g.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

const attachmentText = (content: ArrayBuffer | Uint8Array | string) => (typeof content === 'string' ? content : Buffer.from(content as Uint8Array).toString('utf8'));

describe('buildDsn', () => {
  it('when a recipient got 550 5.1.1, then the DSN is a multipart/report with the explanation, the status fields and the original headers', async () => {
    const raw = buildDsn(input());
    const parsed = await PostalMime.parse(raw);
    const header = (name: string) => parsed.headers.find((h) => h.key === name)?.value;
    expect(parsed.from).toEqual({ name: 'Mail Delivery System', address: 'MAILER-DAEMON@mx.moat.test' });
    expect(parsed.to).toEqual([{ name: '', address: 'alice@sender.example' }]);
    expect(parsed.subject).toBe('Undelivered Mail Returned to Sender');
    expect(parsed.messageId).toBe('<7d1f0c2e-5b7a-5c3e-9f10-2a3b4c5d6e7f@mx.moat.test>');
    expect(parsed.date).toBe('2024-03-05T10:00:00.000Z');
    expect(header('auto-submitted')).toBe('auto-replied');
    expect(header('mime-version')).toBe('1.0');
    expect(header('content-type')).toMatch(/^multipart\/report; report-type=delivery-status;\s*boundary="[^"]+"$/);

    // 1. The human-readable part quotes the server's exact reply.
    expect(parsed.text!.replace(/\s+/g, ' ')).toContain('<nobody@customer.example>: refused; the reply from mail.customer.example was:');
    expect(parsed.text).toContain('550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown in virtual mailbox table');

    // 2. message/delivery-status.
    const report = parsed.attachments.find((a) => a.mimeType === 'message/delivery-status');
    expect(report).toBeDefined();
    const [perMessage, recipient] = statusGroups(attachmentText(report!.content));
    expect(perMessage).toEqual({ 'reporting-mta': 'dns; mx.moat.test', 'x-moat-message-id': '0b7e3c1e-8f3a-4a5b-9c6d-1e2f3a4b5c6d', 'arrival-date': 'Tue, 05 Mar 2024 09:00:00 +0000' });
    expect(recipient).toEqual({
      'final-recipient': 'rfc822; nobody@customer.example',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mail.customer.example',
      'diagnostic-code': 'smtp; 550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown in virtual mailbox table',
      'last-attempt-date': 'Tue, 05 Mar 2024 09:59:58 +0000',
    });

    // 3. text/rfc822-headers: Moat's Received line and the original's header fields, no body.
    const headers = parsed.attachments.find((a) => a.mimeType === 'text/rfc822-headers');
    const headerText = attachmentText(headers!.content);
    expect(headerText).toMatch(/^Received: from client\.test/);
    expect(headerText).toContain('Subject: Quarterly figures');
    expect(headerText).toContain('Message-ID: <q3@sender.example>');
    expect(headerText).toContain('X-Folded: first part');
    expect(raw.toString('latin1')).not.toContain('EICAR');
    expect(raw.toString('latin1')).not.toContain('BODY-LINE');
    expect(parsed.attachments).toHaveLength(2);
  });

  it('when built twice from the same input, then the bytes are the same', () => {
    expect(buildDsn(input()).equals(buildDsn(input()))).toBe(true);
  });

  it('when built, then every line ends in CRLF, none is longer than 998 octets, and the top-level header lines stay within 78', () => {
    const longReply = { code: 550, enhanced: '5.7.1', text: `${'policy '.repeat(200)}${'x'.repeat(1500)}` };
    const raw = buildDsn(input({ recipients: [{ ...input().recipients[0]!, reply: longReply }], original: { prepended: '', raw: Buffer.from(`Subject: ${'y'.repeat(2000)}\r\n\r\nbody\r\n`) } }));
    const text = raw.toString('latin1');
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    const lines = text.split('\r\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(998);
    const topHeaders = lines.slice(0, lines.indexOf(''));
    expect(Math.max(...topHeaders.map((l) => l.length))).toBeLessThanOrEqual(78);
  });

  it('when the reply is very long, then Diagnostic-Code is folded and unfolds to the reply', async () => {
    const text = `Message rejected: ${'this sentence is long '.repeat(10)}end`;
    const parsed = await PostalMime.parse(buildDsn(input({ recipients: [{ ...input().recipients[0]!, reply: { code: 554, enhanced: '5.7.1', text } }] })));
    const report = attachmentText(parsed.attachments.find((a) => a.mimeType === 'message/delivery-status')!.content);
    expect(report.split(/\r?\n/).every((l) => l.length <= 78)).toBe(true);
    expect(statusGroups(report)[1]!['diagnostic-code']).toBe(`smtp; 554 5.7.1 ${text}`);
  });

  it('when a recipient expired and another is still deferred in a delay warning, then Action, Status and Will-Retry-Until say so', async () => {
    const expired = buildDsn(
      input({
        recipients: [{ rcpt: 'bob@customer.example', fate: 'expired', reply: { code: null, enhanced: null, text: 'connect to 192.0.2.25:25: connection refused' }, remoteMta: null, lastAttemptAt: new Date('2024-03-10T09:00:00Z') }],
      }),
    );
    const parsedExpired = await PostalMime.parse(expired);
    const e = statusGroups(attachmentText(parsedExpired.attachments.find((a) => a.mimeType === 'message/delivery-status')!.content))[1]!;
    expect(e).toEqual({
      'final-recipient': 'rfc822; bob@customer.example',
      action: 'failed',
      status: '4.4.7',
      'diagnostic-code': 'X-Moat; connect to 192.0.2.25:25: connection refused',
      'last-attempt-date': 'Sun, 10 Mar 2024 09:00:00 +0000',
    });
    expect(parsedExpired.text!.replace(/\s+/g, ' ')).toContain('still not delivered after 5 days of retrying; giving up');

    const delayed = await PostalMime.parse(
      buildDsn(
        input({
          action: 'delayed',
          willRetryUntil: new Date('2024-03-10T09:00:00Z'),
          recipients: [{ rcpt: 'bob@customer.example', fate: 'delayed', reply: { code: 451, enhanced: '4.3.0', text: 'Mailbox temporarily unavailable' }, remoteMta: 'mail.customer.example', lastAttemptAt: new Date('2024-03-05T13:00:00Z') }],
        }),
      ),
    );
    expect(delayed.subject).toBe('Delayed Mail (still being retried)');
    expect(delayed.text).toContain('you do not need to send it again');
    expect(delayed.text!.replace(/\s+/g, ' ')).toContain('until Sun, 10 Mar 2024 09:00:00 +0000');
    const d = statusGroups(attachmentText(delayed.attachments.find((a) => a.mimeType === 'message/delivery-status')!.content))[1]!;
    expect(d).toMatchObject({ action: 'delayed', status: '4.3.0', 'remote-mta': 'dns; mail.customer.example', 'will-retry-until': 'Sun, 10 Mar 2024 09:00:00 +0000' });
  });

  it('when several recipients failed, then one DSN reports each with its own reply', async () => {
    const parsed = await PostalMime.parse(
      buildDsn(
        input({
          recipients: [
            input().recipients[0]!,
            { rcpt: 'full@customer.example', fate: 'failed', reply: { code: 552, enhanced: '5.2.2', text: 'Mailbox full' }, remoteMta: 'mail.customer.example', lastAttemptAt: new Date('2024-03-05T09:59:58Z') },
          ],
        }),
      ),
    );
    const groups = statusGroups(attachmentText(parsed.attachments.find((a) => a.mimeType === 'message/delivery-status')!.content));
    expect(groups.slice(1).map((g) => [g['final-recipient'], g.status])).toEqual([
      ['rfc822; nobody@customer.example', '5.1.1'],
      ['rfc822; full@customer.example', '5.2.2'],
    ]);
    expect(parsed.text).toContain('552 5.2.2 Mailbox full');
  });

  it('when the original cannot be read any more, then the DSN has no headers part and says so', async () => {
    const parsed = await PostalMime.parse(buildDsn(input({ original: null })));
    expect(parsed.attachments.map((a) => a.mimeType)).toEqual(['message/delivery-status']);
    expect(parsed.text).toContain('no longer available');
  });

  it('when the original headers hold 8-bit text, then the headers part is quoted-printable and decodes to them', async () => {
    const raw = Buffer.from('Subject: Grüße aus Köln\r\nFrom: jörg@sender.example\r\n\r\nHallo\r\n', 'utf8');
    const dsn = buildDsn(input({ original: { prepended: '', raw } }));
    expect(dsn.every((b) => b < 0x80)).toBe(true);
    const parsed = await PostalMime.parse(dsn);
    // (postal-mime hands decoded text over with LF line ends.)
    expect(attachmentText(parsed.attachments.find((a) => a.mimeType === 'text/rfc822-headers')!.content).replace(/\r\n/g, '\n')).toBe('Subject: Grüße aus Köln\nFrom: jörg@sender.example\n');
  });

  it('when a recipient address is not ASCII, then Final-Recipient is of type utf-8 with \\x{…} escapes', async () => {
    const parsed = await PostalMime.parse(buildDsn(input({ recipients: [{ ...input().recipients[0]!, rcpt: 'jörg@customer.example' }] })));
    const groups = statusGroups(attachmentText(parsed.attachments.find((a) => a.mimeType === 'message/delivery-status')!.content));
    expect(groups[1]!['final-recipient']).toBe('utf-8; j\\x{F6}rg@customer.example');
    expect(parsed.text).toContain('<jörg@customer.example>');
  });

  it('when the envelope sender is the null sender or nothing failed, then building refuses', () => {
    expect(() => buildDsn(input({ to: '' }))).toThrow(/null sender/);
    expect(() => buildDsn(input({ recipients: [] }))).toThrow(/at least one/);
  });
});

describe('dsnStatus', () => {
  const reply = (code: number | null, enhanced: string | null) => ({ code, enhanced, text: 't' });
  it('when the reply has a valid enhanced code, then it is the status (its class following the basic code)', () => {
    expect(dsnStatus({ fate: 'failed', reply: reply(550, '5.1.1') })).toBe('5.1.1');
    expect(dsnStatus({ fate: 'failed', reply: reply(550, '4.1.1') })).toBe('5.1.1');
    expect(dsnStatus({ fate: 'failed', reply: reply(null, '5.1.10') })).toBe('5.1.10');
    expect(dsnStatus({ fate: 'delayed', reply: reply(451, '4.7.1') })).toBe('4.7.1');
  });
  it('when there is only a basic code, then the status is derived from it: 5.0.0 / 4.0.0', () => {
    expect(dsnStatus({ fate: 'failed', reply: reply(554, null) })).toBe('5.0.0');
    expect(dsnStatus({ fate: 'failed', reply: reply(550, 'junk') })).toBe('5.0.0');
    expect(dsnStatus({ fate: 'delayed', reply: reply(421, null) })).toBe('4.0.0');
  });
  it('when an expired recipient has no enhanced code, then the status is 4.4.7 (delivery time expired)', () => {
    expect(dsnStatus({ fate: 'expired', reply: reply(451, null) })).toBe('4.4.7');
    expect(dsnStatus({ fate: 'expired', reply: reply(null, null) })).toBe('4.4.7');
    expect(dsnStatus({ fate: 'expired', reply: reply(452, '4.2.2') })).toBe('4.2.2');
  });
  it('when nothing at all is known, then the status is the generic one of the fate', () => {
    expect(dsnStatus({ fate: 'failed', reply: reply(null, null) })).toBe('5.0.0');
    expect(dsnStatus({ fate: 'delayed', reply: reply(null, null) })).toBe('4.0.0');
  });
});

describe('text helpers', () => {
  it('when a date is formatted, then it is RFC 5322 in UTC', () => {
    expect(rfc5322Date(new Date('2024-01-07T03:04:05.678Z'))).toBe('Sun, 07 Jan 2024 03:04:05 +0000');
  });

  it('when a duration is described, then the largest whole unit is used', () => {
    expect(humanDuration(5 * 86_400_000 + 3_600_000)).toBe('5 days');
    expect(humanDuration(4 * 3_600_000)).toBe('4 hours');
    expect(humanDuration(60_000)).toBe('1 minute');
    expect(humanDuration(500)).toBe('less than a second');
  });

  it('when a field value has line breaks, controls or non-ASCII, then it becomes one 7-bit line', () => {
    expect(asciiFieldValue('a\r\nb\tc\u0001 ü')).toBe('a b c\\x{1} \\x{FC}');
  });

  it('when a field is long, then it is folded at spaces into lines of at most 78', () => {
    const folded = foldField('Diagnostic-Code', `smtp; ${'word '.repeat(40)}`);
    const lines = folded.split('\r\n');
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.every((l) => l.length <= 78)).toBe(true);
    expect(lines.slice(1).every((l) => l.startsWith(' '))).toBe(true);
    expect(folded.replace(/\r\n/g, '')).toBe(`Diagnostic-Code: smtp; ${'word '.repeat(40).trim()}`);
  });

  it('when text is quoted-printable encoded, then lines stay within 76 and =, trailing blanks and 8-bit bytes are escaped', () => {
    const qp = quotedPrintable(Buffer.from(`a=b \r\n${'x'.repeat(100)}\r\nü`, 'utf8'));
    expect(qp.split('\r\n').every((l) => l.length <= 76)).toBe(true);
    expect(qp.startsWith('a=3Db=20\r\n')).toBe(true);
    expect(qp.endsWith('=C3=BC')).toBe(true);
  });

  it('when the header section is extracted, then it stops at the empty line, keeps folded fields whole and is cut at a field boundary', () => {
    expect(headerSection('X-A: 1\r\n', Buffer.from('B: 2\r\n C\r\n\r\nbody\r\n')).headers.toString()).toBe('X-A: 1\r\nB: 2\r\n C\r\n');
    expect(headerSection('', Buffer.from('\r\nbody only\r\n')).headers.toString()).toBe('');
    expect(headerSection('', Buffer.from('Bare: lf\n\nbody\n')).headers.toString()).toBe('Bare: lf\r\n');
    const cut = headerSection('', Buffer.from(`A: ${'1'.repeat(50)}\r\nB: ${'2'.repeat(50)}\r\n continued\r\n\r\n`), 80);
    expect(cut).toEqual({ headers: Buffer.from(`A: ${'1'.repeat(50)}\r\n`), truncated: true });
  });
});
