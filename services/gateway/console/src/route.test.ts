import { describe, expect, it } from 'vitest';
import { archiveHref, archiveQuery, homeHref, listQuery, messageHref, parsePlace, quarantineHref } from './route.js';

const id = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('console places', () => {
  it('when the fragment names the quarantine with filters, then they are read back, unknown values falling back to defaults', () => {
    expect(parsePlace(`#/quarantine?tenant=${id}&rcpt=%20a@b.example%20&category=spam&state=released&q=win`)).toEqual({
      view: 'quarantine',
      filters: { tenant: id, rcpt: 'a@b.example', category: 'spam', state: 'released', q: 'win' },
    });
    expect(parsePlace('#/quarantine?tenant=nope&category=evil&state=gone')).toEqual({ view: 'quarantine', filters: { tenant: null, rcpt: '', category: '', state: 'quarantined', q: '' } });
  });

  it('when the fragment names a message, then only a UUID is taken; anything else is the sign-in page', () => {
    expect(parsePlace(`#/quarantine/${id}?tenant=${id}`)).toMatchObject({ view: 'message', messageId: id, filters: { tenant: id } });
    expect(parsePlace('#/quarantine/../../api/v1/tenants')).toEqual({ view: 'signin' });
    expect(parsePlace('')).toEqual({ view: 'signin' });
    expect(parsePlace('#/elsewhere')).toEqual({ view: 'signin' });
  });

  it('when links are built, then they round-trip through parsePlace and leave empty filters out', () => {
    const filters = { tenant: id, rcpt: 'x+y@z.example', category: 'policy', state: 'quarantined', q: 'a&b=c' };
    expect(quarantineHref({ tenant: id, rcpt: '' })).toBe(`#/quarantine?tenant=${id}`);
    expect(parsePlace(quarantineHref(filters))).toEqual({ view: 'quarantine', filters });
    expect(parsePlace(messageHref(id, filters))).toEqual({ view: 'message', messageId: id, filters });
  });

  it('when the list is asked for, then the API query carries the filters, the page size and the cursor', () => {
    const q = new URLSearchParams(listQuery({ tenant: id, rcpt: 'a@b.example', category: '', state: 'quarantined', q: 'x y' }, 'CURSOR', 25));
    expect(Object.fromEntries(q)).toEqual({ rcpt: 'a@b.example', state: 'quarantined', q: 'x y', limit: '25', before: 'CURSOR' });
  });

  it('when the fragment names the archive, then its tenant and words are read back, and links and the API query round-trip', () => {
    expect(parsePlace(`#/archive?tenant=${id}&q=%20invoice%20`)).toEqual({ view: 'archive', filters: { tenant: id, q: 'invoice' } });
    expect(parsePlace('#/archive?tenant=nope')).toEqual({ view: 'archive', filters: { tenant: null, q: '' } });
    expect(parsePlace('#/archive/x')).toEqual({ view: 'signin' });
    expect(parsePlace(archiveHref({ tenant: id, q: 'a&b' }))).toEqual({ view: 'archive', filters: { tenant: id, q: 'a&b' } });
    expect(archiveHref({ tenant: id, q: '' })).toBe(`#/archive?tenant=${id}`);
    expect(Object.fromEntries(new URLSearchParams(archiveQuery({ tenant: id, q: 'x y' }, 'C', 20)))).toEqual({ q: 'x y', limit: '20', before: 'C' });
  });

  it('when a key signs in, then it lands on the quarantine, or on the archive when that is all it may read', () => {
    expect(homeHref(['quarantine:read', 'archive:read'])).toBe('#/quarantine');
    expect(homeHref(['*'])).toBe('#/quarantine');
    expect(homeHref(['archive:read', 'spam-feedback:write'])).toBe('#/archive');
    expect(homeHref([])).toBe('#/quarantine');
  });
});
