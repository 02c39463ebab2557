import { describe, expect, it } from 'vitest';
import { buildPreview, htmlToPlainText, previewTextLimit, tidyText } from './quarantine-preview.js';

const mail = (lines: string[]) => Buffer.from(lines.join('\r\n'));

describe('htmlToPlainText', () => {
  it('when HTML has markup, scripts, styles, comments and entities, then only the readable text remains, links as text', () => {
    const text = htmlToPlainText(
      '<html><head><title>T</title><style>p{color:red}</style></head><body><!-- hidden --><p>Dear&nbsp;customer &amp; friend,</p>' +
        '<script>document.location="x"</script><a href="https://phish.example/login?a=1&amp;b=2">your bank</a><br>&#8364;5 &lt;now&gt;</body></html>',
    );
    expect(tidyText(text)).toBe('Dear customer & friend,\n(https://phish.example/login?a=1&b=2) your bank\n€5 <now>');
  });

  it('when HTML is hostile (thousands of unclosed tags and comments), then it is converted in linear time', () => {
    const hostile = '<a '.repeat(50_000) + '<!--'.repeat(50_000) + '<'.repeat(50_000);
    const started = performance.now();
    htmlToPlainText(hostile);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('tidyText', () => {
  it('when text has control characters and bidi overrides, then they are removed and blank runs collapsed', () => {
    expect(tidyText('a\u001b[31mred\u202e\r\n\r\n\r\n\r\nb  \t c')).toBe('a[31mred\n\nb c');
  });
});

describe('buildPreview', () => {
  it('when a message has a text part and an attachment, then the preview is the text and the attachment by name, type and size only', async () => {
    const preview = await buildPreview(
      mail([
        'Subject: s',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b"',
        '',
        '--b',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Please find the file attached.',
        '--b',
        'Content-Type: application/octet-stream; name="invoice.com"',
        'Content-Transfer-Encoding: base64',
        'Content-Disposition: attachment; filename="invoice.com"',
        '',
        Buffer.from('MZ-secret-content').toString('base64'),
        '--b--',
        '',
      ]),
    );
    expect(preview).toEqual({ text: 'Please find the file attached.', truncated: false, source: 'text', attachments: [{ filename: 'invoice.com', mimeType: 'application/octet-stream', size: 17 }] });
    expect(JSON.stringify(preview)).not.toContain('secret');
  });

  it('when the text is long, then it is cut at the limit and says so', async () => {
    const preview = await buildPreview(mail(['Subject: s', '', 'x'.repeat(previewTextLimit * 2)]));
    expect(preview.text).toHaveLength(previewTextLimit);
    expect(preview.truncated).toBe(true);
  });

  it('when a message has no body, then the preview is empty', async () => {
    expect(await buildPreview(mail(['Subject: s', '', '']))).toMatchObject({ text: '', source: 'none', attachments: [] });
  });
});
