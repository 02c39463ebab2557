import { describe, expect, it } from 'vitest';
import { extractHeaders, headerSection } from './headers.js';

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'));

describe('headerSection', () => {
  it('when the message has a body, then only the lines before the empty line are returned', () => {
    const raw = crlf(['Subject: a', 'From: b@example.com', '', 'Subject: in the body', '']);
    expect(headerSection(raw).toString()).toBe('Subject: a\r\nFrom: b@example.com\r\n');
  });

  it('when lines end in bare LF, then the section still ends at the first empty line', () => {
    expect(headerSection(Buffer.from('Subject: a\nFrom: b\n\nbody\n')).toString()).toBe('Subject: a\nFrom: b\n');
  });

  it('when the message starts with an empty line, then there is no header section', () => {
    expect(headerSection(crlf(['', 'Subject: not a header'])).length).toBe(0);
  });

  it('when the body is large, then the section is sliced off without reading the body', () => {
    const head = 'Subject: big\r\n\r\n';
    const raw = Buffer.concat([Buffer.from(head), Buffer.alloc(8 * 1024 * 1024, 0x61)]);
    const section = headerSection(raw);
    expect(section.length).toBe('Subject: big\r\n'.length);
    // A view on the same memory, not a copy of the message.
    expect(section.buffer).toBe(raw.buffer);
  });

  it('when there is no empty line within the limit, then the section stops at the limit', () => {
    const raw = Buffer.from(`X-Long: ${'a'.repeat(1000)}\r\n`);
    expect(headerSection(raw, 100).length).toBe(100);
  });
});

describe('extractHeaders', () => {
  it('when the subject has encoded words, then it is decoded (RFC 2047)', async () => {
    const raw = crlf(['Subject: =?UTF-8?B?SMOpbGxv?= =?UTF-8?Q?w=C3=B6rld?=', '', 'body']);
    expect((await extractHeaders(raw)).subject).toBe('Héllowörld');
  });

  it('when the display name is encoded, then From and To are decoded too', async () => {
    const raw = crlf(['From: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.com>', 'To: "Zoë" <zoe@example.net>', '', '']);
    const headers = await extractHeaders(raw);
    expect(headers.from).toBe('Jörg <jorg@example.com>');
    expect(headers.to).toBe('"Zoë" <zoe@example.net>');
  });

  it('when headers are folded, then they are unfolded (RFC 5322 §2.2.3)', async () => {
    const raw = crlf(['Subject: a long', '\tsubject line', 'To: <a@example.com>,', ' <b@example.com>', 'Date: Mon, 1 Jan 2024', ' 10:00:00 +0000', '', 'body']);
    const headers = await extractHeaders(raw);
    expect(headers.subject).toBe('a long\tsubject line');
    expect(headers.to).toBe('<a@example.com>, <b@example.com>');
    expect(headers.date).toBe('Mon, 1 Jan 2024 10:00:00 +0000');
  });

  it('when a header is missing, then it is null', async () => {
    const raw = crlf(['From: <a@example.com>', '', 'Subject: body text, not a header']);
    expect(await extractHeaders(raw)).toEqual({ from: '<a@example.com>', to: null, subject: null, date: null, messageIdHeader: null });
  });

  it('when the message has no headers at all, then every field is null', async () => {
    expect(await extractHeaders(Buffer.from('\r\nbody'))).toEqual({ from: null, to: null, subject: null, date: null, messageIdHeader: null });
  });

  it('when a header occurs twice, then the first one counts', async () => {
    const raw = crlf(['Subject: first', 'Message-ID: <one@example.com>', 'Subject: second', 'Message-ID: <two@example.com>', '', '']);
    const headers = await extractHeaders(raw);
    expect(headers.subject).toBe('first');
    expect(headers.messageIdHeader).toBe('<one@example.com>');
  });

  it('when header values are raw UTF-8 (RFC 6532), then they are read as UTF-8', async () => {
    const raw = crlf(['Subject: Grüße aus Köln', '', '']);
    expect((await extractHeaders(raw)).subject).toBe('Grüße aus Köln');
  });
});
