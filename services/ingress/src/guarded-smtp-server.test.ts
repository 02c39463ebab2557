import { describe, expect, it } from 'vitest';
import { enhancedContext, withOwnCode } from './guarded-smtp-server.js';

describe('enhancedContext', () => {
  it('when a reply carries its own enhanced status code, then smtp-server adds none (no stacked codes)', () => {
    expect(enhancedContext(550, '5.7.1 Relay access denied', 'RCPT')).toBe(false);
    expect(enhancedContext(451, ['4.3.0 Temporary failure', 'try again'], undefined)).toBe(false);
  });

  it('when smtp-server answers with its own text, then its context stands, so it adds its code', () => {
    expect(enhancedContext(503, 'Error: need MAIL command', 'RCPT')).toBe('RCPT');
    expect(enhancedContext(250, 'Accepted', 'MAIL_FROM_OK')).toBe('MAIL_FROM_OK');
    // A number that only looks like a code is text: "2.5 seconds" is not an enhanced status code.
    expect(enhancedContext(421, '2.5 seconds passed', undefined)).toBe(undefined);
  });

  it('when it is the greeting or the 354 go-ahead, then no code (RFC 2034: not in the banner; 3xx carry none)', () => {
    expect(enhancedContext(220, 'mx.example ESMTP', undefined)).toBe(false);
    expect(enhancedContext(354, 'End data with <CR><LF>.<CR><LF>', undefined)).toBe(false);
  });
});

describe('withOwnCode', () => {
  it('when smtp-server refuses SIZE=, shuts down or is full, then the reply names the right enhanced code', () => {
    expect(withOwnCode(552, 'Error: message exceeds fixed maximum message size 1024')).toBe('5.3.4 Error: message exceeds fixed maximum message size 1024');
    expect(withOwnCode(421, 'Server shutting down')).toBe('4.3.2 Server shutting down');
    expect(withOwnCode(421, 'mx.example Too many connected clients, try again in a moment')).toMatch(/^4\.7\.0 /);
    expect(withOwnCode(550, '5.7.1 Relay access denied')).toBe('5.7.1 Relay access denied');
    expect(withOwnCode(503, 'Error: need MAIL command')).toBe('Error: need MAIL command');
  });
});
