import { describe, expect, it } from 'vitest';
import { isPermanent, isSuccess, isTransient, localReply, outcomeOf, parseReply } from './reply.js';

describe('parseReply', () => {
  it('when a reply has an enhanced status code, then code, enhanced and text are split', () => {
    expect(parseReply('550 5.1.1 <nobody@x.example>: Recipient address rejected: User unknown')).toEqual({
      code: 550,
      enhanced: '5.1.1',
      text: '<nobody@x.example>: Recipient address rejected: User unknown',
    });
  });

  it('when a reply has no enhanced status code, then enhanced is null', () => {
    expect(parseReply('250 Ok')).toEqual({ code: 250, enhanced: null, text: 'Ok' });
    expect(parseReply('421')).toEqual({ code: 421, enhanced: null, text: '' });
  });

  it('when a reply spans several lines, then every line is kept without its prefixes', () => {
    expect(parseReply('550-5.7.1 first line\n550-5.7.1 second line\n550 5.7.1 last line')).toEqual({ code: 550, enhanced: '5.7.1', text: 'first line\nsecond line\nlast line' });
  });

  it('when the text starts with something that only looks like an enhanced code, then it stays text', () => {
    expect(parseReply('250 2.0.0x queued')).toEqual({ code: 250, enhanced: null, text: '2.0.0x queued' });
    expect(parseReply('451 3.0.0 odd class')).toEqual({ code: 451, enhanced: null, text: '3.0.0 odd class' });
  });

  it('when the line is not a reply, then the code is null and the text is kept', () => {
    expect(parseReply('garbage from the server')).toEqual({ code: null, enhanced: null, text: 'garbage from the server' });
    expect(parseReply('999 nine')).toEqual({ code: null, enhanced: null, text: '999 nine' });
  });
});

describe('classification', () => {
  it('when the server says 5xx, then the reply is permanent and not transient', () => {
    const r = parseReply('554 5.7.1 rejected');
    expect(isPermanent(r)).toBe(true);
    expect(isTransient(r)).toBe(false);
    expect(outcomeOf(r)).toBe('failed');
  });

  it('when the server says 4xx, then the reply is transient', () => {
    const r = parseReply('450 4.2.1 try later');
    expect(isPermanent(r)).toBe(false);
    expect(isTransient(r)).toBe(true);
    expect(outcomeOf(r)).toBe('deferred');
  });

  it('when there is no reply (connection error), then it is transient', () => {
    const r = localReply('connect ECONNREFUSED 127.0.0.1:1');
    expect(isTransient(r)).toBe(true);
    expect(isPermanent(r)).toBe(false);
    expect(outcomeOf(r)).toBe('deferred');
  });

  it('when there is no reply but an explicit permanent status, then it is permanent', () => {
    expect(isPermanent(localReply('message larger than the SIZE the server advertised', '5.3.4'))).toBe(true);
  });

  it('when the server says 2xx, then the recipient is delivered', () => {
    const r = parseReply('250 2.0.0 Ok: queued as 123');
    expect(isSuccess(r)).toBe(true);
    expect(outcomeOf(r)).toBe('delivered');
  });

  it('when the server answers out of protocol (3xx to RCPT), then the recipient is deferred', () => {
    expect(outcomeOf(parseReply('354 go ahead'))).toBe('deferred');
  });
});
