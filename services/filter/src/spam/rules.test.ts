import { describe, expect, it } from 'vitest';
import type { CheckResult } from '@moat/contracts';
import { parseForSpam } from './parse.js';
import { baseDomain, evaluateRules, gtube } from './rules.js';

async function rulesFor(raw: string, auth: CheckResult[] = []) {
  const buf = Buffer.from(raw);
  return evaluateRules({ input: await parseForSpam(buf), raw: buf, auth }).map((h) => h.rule);
}

const plainHeaders = 'From: Bob <bob@example.com>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: hi\r\n';

describe('spam rules', () => {
  it('when a plain message is evaluated, then no rule fires', async () => {
    expect(await rulesFor(`${plainHeaders}\r\nHello.\r\n`)).toEqual([]);
  });

  it('when the body carries GTUBE, plain or base64-encoded, then GTUBE fires', async () => {
    expect(await rulesFor(`${plainHeaders}\r\n${gtube}\r\n`)).toContain('GTUBE');
    const encoded = Buffer.from(`text ${gtube} text`).toString('base64');
    expect(await rulesFor(`${plainHeaders}Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${encoded}\r\n`)).toContain('GTUBE');
  });

  it('when an attachment is an executable, then EXECUTABLE_ATTACHMENT fires, and a PDF does not', async () => {
    const withAttachment = (name: string) =>
      `${plainHeaders}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n`;
    expect(await rulesFor(withAttachment('invoice.pdf.exe'))).toEqual(['EXECUTABLE_ATTACHMENT']);
    expect(await rulesFor(withAttachment('invoice.pdf'))).toEqual([]);
  });

  it('when authentication failed, then the auth rules fire by result', async () => {
    const auth: CheckResult[] = [
      { check: 'dkim', result: 'fail', reason: '' },
      { check: 'spf', result: 'softfail', reason: '' },
      { check: 'dmarc', result: 'fail', reason: '' },
    ];
    expect(await rulesFor(`${plainHeaders}\r\nHello.\r\n`, auth)).toEqual(['AUTH_DMARC_FAIL', 'AUTH_SPF_SOFTFAIL', 'AUTH_DKIM_FAIL']);
  });

  it('when a link shows one web address and goes to another domain, then URL_TEXT_MISMATCH fires; a tracker behind a bare name does not', async () => {
    const html = (a: string) => `${plainHeaders}Content-Type: text/html\r\n\r\n<html><body>${a}</body></html>\r\n`;
    expect(await rulesFor(html('<a href="http://evil.test/login">https://www.mybank.com/login</a>'))).toEqual(['URL_TEXT_MISMATCH']);
    expect(await rulesFor(html('<a href="https://secure.mybank.com/x">https://www.mybank.com/login</a>'))).toEqual([]);
    expect(await rulesFor(html('<a href="http://click.tracker.test/r?1">dilbert.com</a>'))).toEqual([]);
  });

  it('when the From display name shows another domain address, then FROM_NAME_OTHER_ADDRESS fires', async () => {
    const raw = `From: "service@paypal.com" <x@evil.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@evil.test>\r\n\r\nhi\r\n`;
    expect(await rulesFor(raw)).toEqual(['FROM_NAME_OTHER_ADDRESS']);
  });

  it('when Date and Message-ID are missing, then both fire', async () => {
    expect(await rulesFor('From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n')).toEqual(['MISSING_DATE', 'MISSING_MESSAGE_ID']);
  });

  it('when a host is reduced to its base domain, then ccTLD second levels are kept', () => {
    expect(baseDomain('a.b.example.com')).toBe('example.com');
    expect(baseDomain('www.bbc.co.uk')).toBe('bbc.co.uk');
    expect(baseDomain('example.com.')).toBe('example.com');
  });
});
