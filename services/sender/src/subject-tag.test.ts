import { describe, expect, it } from 'vitest';
import { encodeTag, subjectTagOf, tagSubject } from './subject-tag.js';

const msg = (headers: string) => Buffer.from(`${headers}\r\n\r\nSubject: not a header, the body\r\n`, 'latin1');

describe('subjectTagOf', () => {
  it('when the prepended block asks for a tag, then it is read (unfolded); without the field there is none', () => {
    expect(subjectTagOf('Received: x\r\nX-Moat-Verdict: deliver\r\nX-Moat-Subject-Tag: [SPAM]\r\n')).toBe('[SPAM]');
    expect(subjectTagOf('X-Moat-Subject-Tag: [possible\r\n spam]\r\n')).toBe('[possible spam]');
    expect(subjectTagOf('Received: x\r\nX-Moat-Verdict: deliver\r\n')).toBeNull();
  });
});

describe('tagSubject', () => {
  it('when the message has a Subject, then the tag goes in front of its value and nothing else changes', () => {
    const raw = msg('From: a@b.example\r\nsubject:  Cheap pills\r\nTo: c@d.example');
    expect(tagSubject(raw, '[SPAM]').toString('latin1')).toBe('From: a@b.example\r\nsubject:  [SPAM] Cheap pills\r\nTo: c@d.example\r\n\r\nSubject: not a header, the body\r\n');
  });

  it('when the Subject is folded or encoded, then the tag goes before the first word and the rest stays intact', () => {
    const raw = msg('Subject: =?UTF-8?B?w6lsw6k=?=\r\n continued');
    expect(tagSubject(raw, '[SPAM]').toString('latin1')).toContain('Subject: [SPAM] =?UTF-8?B?w6lsw6k=?=\r\n continued\r\n');
  });

  it('when the subject already starts with the tag, then the message is returned unchanged', () => {
    const raw = msg('Subject: [SPAM] again');
    expect(tagSubject(raw, '[SPAM]')).toBe(raw);
  });

  it('when the message has no Subject (only in its body), then one holding the tag is added on top', () => {
    const raw = msg('From: a@b.example');
    expect(tagSubject(raw, '[SPAM]').toString('latin1')).toBe('Subject: [SPAM]\r\nFrom: a@b.example\r\n\r\nSubject: not a header, the body\r\n');
  });

  it('when the tag is not ASCII, then it is written as an RFC 2047 encoded word', () => {
    expect(encodeTag('[СПАМ]')).toBe(`=?UTF-8?B?${Buffer.from('[СПАМ]').toString('base64')}?=`);
    expect(tagSubject(msg('Subject: hi'), '[СПАМ]').toString('latin1')).toContain(`Subject: ${encodeTag('[СПАМ]')} hi\r\n`);
  });
});
