import { describe, expect, it } from 'vitest';
import { quarantineCategory } from './quarantine-category.js';

const check = (name: string, result: 'pass' | 'fail' | 'skip') => ({ check: name, result, reason: '' });

describe('quarantineCategory', () => {
  it('when the virus check failed, then it is a virus, whatever else failed too', () => {
    expect(quarantineCategory({ checks: [check('spam', 'fail'), check('virus', 'fail')], reasons: ['spam: score 20'] })).toBe('virus');
    expect(quarantineCategory({ checks: [], reasons: ['virus: Eicar-Test-Signature'] })).toBe('virus');
  });

  it('when spoofing and spam both failed, then it is spoofing (the more dangerous)', () => {
    expect(quarantineCategory({ checks: [check('anti-spoofing', 'fail'), check('spam', 'fail')], reasons: [] })).toBe('spoofing');
    expect(quarantineCategory({ checks: [], reasons: ['Spoofing: claims to be from customer.test'] })).toBe('spoofing');
  });

  it('when only the spam check failed, then it is spam; a passing one is not', () => {
    expect(quarantineCategory({ checks: [check('spam', 'fail'), check('virus', 'pass')], reasons: [] })).toBe('spam');
    expect(quarantineCategory({ checks: [check('rspamd-spam', 'fail')], reasons: [] })).toBe('spam');
    expect(quarantineCategory({ checks: [check('spam', 'pass')], reasons: ['blocked sender: eve@x.test'] })).toBe('policy');
  });

  it('when nothing is recognised, then it is policy', () => {
    expect(quarantineCategory({ checks: [], reasons: [] })).toBe('policy');
  });
});
