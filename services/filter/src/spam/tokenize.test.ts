import { describe, expect, it } from 'vitest';
import { parseForSpam, stripHtml } from './parse.js';
import { tokenize } from './tokenize.js';

function message(headers: string, body: string, contentType = 'text/plain; charset=utf-8'): Buffer {
  return Buffer.from(`${headers}\r\nContent-Type: ${contentType}\r\n\r\n${body}\r\n`);
}

describe('tokenize', () => {
  it('when a message has a subject, sender and body, then tokens are prefixed by where they came from', async () => {
    const raw = message('From: "Alice Smith" <alice@example.com>\r\nSubject: Cheap Meds!!!\r\nMessage-ID: <x1@mail.example.com>\r\nX-Mailer: SuperMailer 2.0', 'Hello friend, visit http://www.pills.example.net/buy?id=7 today.');
    const tokens = tokenize(await parseForSpam(raw));
    expect(tokens).toContain('subject:cheap');
    expect(tokens).toContain('subject:meds!!!');
    expect(tokens).toContain('subject:punct:!!!');
    expect(tokens).toContain('from:addr:alice@example.com');
    expect(tokens).toContain('from:domain:example.com');
    expect(tokens).toContain('from:name:alice');
    expect(tokens).toContain('xm:supermailer');
    expect(tokens).toContain('mid:example.com');
    expect(tokens).toContain('hello');
    expect(tokens).toContain('friend');
    expect(tokens).toContain('url:example.net');
    expect(tokens).toContain('url:pills.example.net');
    expect(tokens).toContain('url:path:buy');
    // The same word in a subject and a body is different evidence.
    expect(tokens).not.toContain('cheap');
  });

  it('when the body is HTML only, then its visible words are tokens and its markup is not', async () => {
    const raw = message('From: a@b.example\r\nSubject: hi', '<html><style>.x{color:red}</style><body><p>Limited&nbsp;offer <b>today</b></p><!-- hidden comment --></body></html>', 'text/html; charset=utf-8');
    const tokens = tokenize(await parseForSpam(raw));
    expect(tokens).toContain('limited');
    expect(tokens).toContain('offer');
    expect(tokens).toContain('today');
    expect(tokens).not.toContain('color:red}');
    expect(tokens).not.toContain('hidden');
  });

  it('when a word is very long, then it becomes a skip token of its first letter and length', async () => {
    const tokens = tokenize(await parseForSpam(message('Subject: x', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa short')));
    expect(tokens).toContain('skip:a 30');
    expect(tokens).toContain('short');
  });

  it('when the same message is tokenized twice, then the token sets are equal', async () => {
    const raw = message('From: x@y.example\r\nSubject: same', 'one two three four');
    expect([...tokenize(await parseForSpam(raw))]).toEqual([...tokenize(await parseForSpam(raw))]);
  });

  it('when the message is not MIME at all, then it still yields tokens', async () => {
    const tokens = tokenize(await parseForSpam(Buffer.from('just some words without headers')));
    expect(tokens.size).toBeGreaterThan(0);
  });

  it('when HTML is stripped, then entities are decoded and scripts dropped', () => {
    expect(stripHtml('<script>alert(1)</script>A&amp;B &#65;&#x42;').replace(/\s+/g, ' ').trim()).toBe('A&B AB');
  });
});
