import { describe, expect, it } from 'vitest';
import { isPostgresDataError } from './postgres.js';

const nulError = () => Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });

describe('isPostgresDataError', () => {
  it('when an error carries SQLSTATE class 22 or 23, then it is a data error; other codes are not', () => {
    expect(isPostgresDataError(nulError())).toBe(true);
    expect(isPostgresDataError({ code: '23505' })).toBe(true);
    expect(isPostgresDataError({ code: '57P01' })).toBe(false);
    expect(isPostgresDataError(new Error('x'))).toBe(false);
    expect(isPostgresDataError(null)).toBe(false);
  });

  it('when a repository wrapped the driver error, then the cause decides', () => {
    expect(isPostgresDataError(Object.assign(new Error('store write failed'), { code: 'STORE_WRITE_FAILED', cause: { code: '22021' } }))).toBe(true);
    expect(isPostgresDataError(Object.assign(new Error('store write failed'), { code: 'STORE_WRITE_FAILED', cause: { code: '08006' } }))).toBe(false);
  });
});
