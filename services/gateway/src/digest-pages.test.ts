import { describe, expect, it } from 'vitest';
import { digestPageCsp, digestPageHeaders, renderDigestPage } from './digest-pages.js';

describe('digest link pages', () => {
  it('when a message summary carries markup, then the page shows it as text', () => {
    const html = renderDigestPage({
      status: 200,
      title: 'Release this message?',
      message: 'It will be delivered.',
      summary: { from: '<img src=http://tracker.example/p.gif>', subject: '</dd><script>alert(1)</script>', quarantinedAt: '2026-11-28T09:10:00.000Z', category: 'spam', mailbox: 'bob@acme.example' },
      confirm: true,
    });
    expect(html).not.toMatch(/<script|<img/);
    expect(html).toContain('&lt;/dd&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('<form method="post"><button type="submit">Release this message</button></form>');
  });

  it('when a page has no confirmation, then it has no form', () => {
    expect(renderDigestPage({ status: 410, title: 'This link has expired', message: 'x' })).not.toContain('<form');
  });

  it('when the headers are set, then nothing can load, the form posts only here, and the URL (the token) is never sent as a referrer', () => {
    expect(digestPageCsp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/);
    expect(digestPageHeaders).toMatchObject({ 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store', 'X-Frame-Options': 'DENY' });
  });

  it('when the style block is hashed, then the CSP hash is the hash of the block the page carries', async () => {
    const { createHash } = await import('node:crypto');
    const style = /<style>(.*)<\/style>/.exec(renderDigestPage({ status: 200, title: 't', message: 'm' }))![1]!;
    expect(digestPageCsp).toContain(`'sha256-${createHash('sha256').update(style).digest('base64')}'`);
  });
});
