import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { composeDigest, digestPayload, type DigestEntry, type DigestMailInput } from './digest-mail.js';

const digestId = '11111111-2222-4333-8444-555555555555';

function entry(over: Partial<DigestEntry> = {}): DigestEntry {
  return {
    messageId: '0f1e2d3c-4b5a-4987-8765-43210fedcba9',
    quarantinedAt: new Date('2026-11-28T09:15:00Z'),
    from: 'Alice <alice@sender.example>',
    subject: 'Quarterly report',
    category: 'spam',
    releaseUrl: 'https://moat.example/digest/release/abc.def',
    ...over,
  };
}

function input(entries: DigestEntry[], over: Partial<DigestMailInput> = {}): DigestMailInput {
  return { digestId, mailbox: 'bob@acme.example', from: 'quarantine@moat.example', date: new Date('2026-11-28T10:00:30Z'), entries, omitted: 0, linksExpireAt: new Date('2026-12-05T10:00:30Z'), ...over };
}

/** The message split into its header section and its two decoded parts. */
function parse(raw: Buffer): { headers: string; text: string; html: string; types: string[] } {
  const s = raw.toString('utf8');
  const [headers, ...rest] = s.split('\r\n\r\n');
  const body = rest.join('\r\n\r\n');
  const boundary = /boundary="([^"]+)"/.exec(headers!)![1]!;
  const parts = body.split(`--${boundary}`).slice(1, -1);
  const decoded = parts.map((p) => {
    const [h, b] = p.split('\r\n\r\n');
    return { type: /Content-Type: ([^;\r\n]+)/.exec(h!)![1]!, body: Buffer.from(b!.replace(/\r\n/g, ''), 'base64').toString('utf8') };
  });
  return { headers: headers!, text: decoded[0]!.body, html: decoded[1]!.body, types: decoded.map((d) => d.type) };
}

describe('quarantine digest mail', () => {
  it('when a digest is composed, then it is a multipart/alternative with text then HTML, from the digest sender to the mailbox, with the count in the subject', () => {
    const mail = composeDigest(input([entry(), entry({ messageId: '2f1e2d3c-4b5a-4987-8765-43210fedcba9', subject: 'Second' })], { omitted: 1 }));
    const m = parse(mail.raw);
    expect(m.types).toEqual(['text/plain', 'text/html']);
    expect(m.headers).toMatch(/^From: "Moat quarantine" <quarantine@moat\.example>$/m);
    expect(m.headers).toMatch(/^To: <bob@acme\.example>$/m);
    expect(m.headers).toMatch(/^Subject: Quarantine digest: 3 new messages held for bob@acme\.example$/m);
    expect(m.headers).toMatch(/^Date: Sat, 28 Nov 2026 10:00:30 \+0000$/m);
    expect(m.headers).toMatch(new RegExp(`^Message-ID: <${digestId}\\.digest@moat\\.example>$`, 'm'));
    expect(m.headers).toMatch(/^Auto-Submitted: auto-generated$/m);
    expect(mail.subject).toBe('Quarantine digest: 3 new messages held for bob@acme.example');
    expect(m.text).toContain('Subject: Quarterly report');
    expect(m.text).toContain('Release: https://moat.example/digest/release/abc.def');
    expect(m.text).toContain('1 more message is not listed here');
    expect(m.html).toContain('<a href="https://moat.example/digest/release/abc.def">Release</a>');
    // Every line of the message fits SMTP's limit.
    expect(Math.max(...mail.raw.toString('latin1').split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(998);
  });

  it('when a message is a virus or spoofing, then it is listed without a link, with the note that an administrator must release it — even if a link was passed', () => {
    const virus = entry({ category: 'virus', subject: 'Invoice', releaseUrl: 'https://moat.example/digest/release/virus.link' });
    const spoof = entry({ category: 'spoofing', subject: 'CEO request', releaseUrl: null });
    const m = parse(composeDigest(input([virus, spoof, entry({ category: 'policy', releaseUrl: 'https://moat.example/digest/release/policy.link' })])).raw);
    expect(m.text).not.toContain('virus.link');
    expect(m.html).not.toContain('virus.link');
    expect(m.text).toContain('Only an administrator can release this message (quarantined as a virus).');
    expect(m.text).toContain('Only an administrator can release this message (quarantined as spoofing).');
    expect(m.html.match(/<a href=/g)).toHaveLength(1);
    expect(m.html).toContain('policy.link');
  });

  it('when a subject or sender carries markup, line breaks or bidi overrides, then the HTML escapes them and no header or line is added', () => {
    const evil = entry({
      from: '"><img src=http://tracker.example/x.gif>\r\nBcc: victim@example.com',
      subject: '<script>alert(1)</script> & "quotes" \u202Egnp.exe',
      releaseUrl: 'https://moat.example/digest/release/a.b?x="><script>',
    });
    const mail = composeDigest(input([evil]));
    const m = parse(mail.raw);
    expect(m.headers).not.toMatch(/^Bcc:/im);
    expect(m.html).not.toMatch(/<script|<img|\u202E/);
    expect(m.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;');
    expect(m.html).toContain('href="https://moat.example/digest/release/a.b?x=&quot;&gt;&lt;script&gt;"');
    expect(m.text).toContain('From:    "><img src=http://tracker.example/x.gif> Bcc: victim@example.com');
    expect(m.text).not.toContain('\u202E');
  });

  it('when the mailbox is not ASCII, then the subject is an RFC 2047 encoded-word', () => {
    const mail = composeDigest(input([entry()], { mailbox: 'jürgen@acme.example' }));
    const subjectLine = /^Subject: (.*(?:\r\n .*)*)$/m.exec(mail.raw.toString('utf8'))![1]!;
    expect(subjectLine).toMatch(/^=\?UTF-8\?B\?/);
    const decoded = subjectLine.split('\r\n ').map((w) => Buffer.from(/=\?UTF-8\?B\?(.*)\?=/.exec(w)![1]!, 'base64').toString('utf8')).join('');
    expect(decoded).toBe('Quarantine digest: 1 new message held for jürgen@acme.example');
  });

  it('when the payload is built, then it delivers the stored bytes to the mailbox, inbound, with the null reverse-path', () => {
    const mail = composeDigest(input([entry()]));
    const p = digestPayload({ digestId, tenantId: '99999999-2222-4333-8444-555555555555', mailbox: 'bob@acme.example', createdAt: new Date('2026-11-28T10:00:30Z'), mail });
    expect(p).toMatchObject({ messageId: digestId, verdict: 'deliver', direction: 'inbound', mailFrom: '', rcptTo: ['bob@acme.example'], size: mail.raw.length, prependHeaders: '' });
    expect(p.sha256).toBe(createHash('sha256').update(mail.raw).digest('hex'));
    expect(p.store).toEqual({ messageId: digestId, receivedAt: '2026-11-28T10:00:30.000Z' });
    expect(p.headers.subject).toBe(mail.subject);
  });
});
