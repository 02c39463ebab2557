import { describe, expect, it } from 'vitest';
import { normalizeListValue, type FilterEntryKind, type FilterList, type FilterListEntry } from '@moat/store';
import { isWithinDomain, listDecision, matchEntry, type SenderIdentities } from './filter-lists.js';

let n = 0;
/** An entry as the repository stores it: the value normalised. */
function entry(list: FilterList, kind: FilterEntryKind, value: string, mailbox: string | null = null): FilterListEntry {
  n++;
  return { id: `e${n}`, tenantId: 't', mailbox, list, kind, value: normalizeListValue(kind, value), comment: null, createdAt: new Date(n * 1000).toISOString() };
}

const who = (over: Partial<SenderIdentities> = {}): SenderIdentities => ({ mailFrom: 'bounce@mailer.example', headerFrom: ['news@shop.example'], clientIp: '192.0.2.10', ...over });

describe('matchEntry', () => {
  it('when an address entry is written in another case, then it matches the envelope sender or the From header case-insensitively', () => {
    expect(matchEntry(entry('allow', 'address', 'Bounce@Mailer.EXAMPLE'), who())).toBe('envelope sender');
    expect(matchEntry(entry('allow', 'address', 'NEWS@shop.example'), who({ headerFrom: ['news@shop.example'] }))).toBe('From header');
    expect(matchEntry(entry('allow', 'address', 'other@shop.example'), who())).toBeNull();
  });

  it('when a domain entry names a parent domain, then subdomains match and look-alike domains do not', () => {
    expect(matchEntry(entry('block', 'domain', 'Example'), who({ mailFrom: 'x@a.b.example' }))).toBe('envelope sender');
    expect(matchEntry(entry('block', 'domain', 'shop.example'), who({ mailFrom: '', headerFrom: ['n@eu.shop.example'] }))).toBe('From header');
    expect(matchEntry(entry('block', 'domain', 'shop.example'), who({ mailFrom: 'x@badshop.example', headerFrom: ['y@shop.example.evil'] }))).toBeNull();
    expect(isWithinDomain('shop.example', 'shop.example')).toBe(true);
    expect(isWithinDomain('xshop.example', 'shop.example')).toBe(false);
  });

  it('when the sender is the null reverse-path, then no address or domain entry matches it', () => {
    expect(matchEntry(entry('block', 'address', 'x@y.example'), who({ mailFrom: '', headerFrom: [] }))).toBeNull();
    expect(matchEntry(entry('block', 'domain', 'y.example'), who({ mailFrom: '', headerFrom: [] }))).toBeNull();
  });

  it('when an ip entry is an IPv4 range, a single IPv4 address or an IPv6 range, then the client IP matches inside it only (IPv4-mapped clients too)', () => {
    expect(matchEntry(entry('allow', 'ip', '192.0.2.0/24'), who({ clientIp: '192.0.2.200' }))).toBe('client IP');
    expect(matchEntry(entry('allow', 'ip', '192.0.2.0/24'), who({ clientIp: '192.0.3.1' }))).toBeNull();
    expect(matchEntry(entry('allow', 'ip', '192.0.2.10'), who({ clientIp: '::ffff:192.0.2.10' }))).toBe('client IP');
    expect(matchEntry(entry('allow', 'ip', '2001:DB8:1::/48'), who({ clientIp: '2001:db8:1:ffff::25' }))).toBe('client IP');
    expect(matchEntry(entry('allow', 'ip', '2001:db8:1::/48'), who({ clientIp: '2001:db8:2::25' }))).toBeNull();
    // IPv4 ranges never match IPv6 clients and the reverse.
    expect(matchEntry(entry('allow', 'ip', '0.0.0.0/0'), who({ clientIp: '2001:db8::1' }))).toBeNull();
    expect(matchEntry(entry('allow', 'ip', '::/0'), who({ clientIp: '192.0.2.1' }))).toBeNull();
  });
});

describe('normalizeListValue', () => {
  it('when values are valid, then they are stored in one spelling', () => {
    expect(normalizeListValue('address', ' Alice@Example.COM. ')).toBe('alice@example.com');
    expect(normalizeListValue('domain', 'Example.COM.')).toBe('example.com');
    expect(normalizeListValue('ip', '192.0.2.1')).toBe('192.0.2.1/32');
    expect(normalizeListValue('ip', '2001:0DB8::/32')).toBe('2001:db8::/32');
  });

  it('when values are malformed, then the error says what is wrong', () => {
    expect(() => normalizeListValue('ip', '192.0.2.1/24')).toThrow(/host bits set; did you mean 192.0.2.0\/24/);
    expect(() => normalizeListValue('ip', '192.0.2.0/33')).toThrow(/prefix length/);
    expect(() => normalizeListValue('ip', 'mail.example')).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => normalizeListValue('domain', '*.example.com')).toThrow(/matches its subdomains too/);
    expect(() => normalizeListValue('domain', 'a@example.com')).toThrow(/use kind "address"/);
    expect(() => normalizeListValue('domain', 'exa mple.com')).toThrow(/not a domain name/);
    expect(() => normalizeListValue('address', 'nobody')).toThrow(/not an email address/);
  });
});

describe('listDecision', () => {
  const rcpts = ['a@tenant.example', 'b@tenant.example'];

  it('when no entry matches, then the lists decide nothing and say nothing', () => {
    expect(listDecision([entry('block', 'domain', 'elsewhere.example')], rcpts, who())).toEqual({ kind: 'none', reason: null });
  });

  it('when a tenant-wide block entry matches, then the message is blocked with a reason naming the entry and the identity', () => {
    const d = listDecision([entry('block', 'domain', 'shop.example')], rcpts, who());
    expect(d.kind).toBe('block');
    expect(d.kind === 'block' && d.reason).toBe("policy: blocked by the tenant's block list (domain shop.example matches the From header)");
  });

  it('when an entry blocks and another allows the same sender, then block wins', () => {
    const d = listDecision([entry('allow', 'address', 'news@shop.example'), entry('block', 'ip', '192.0.2.0/24')], rcpts, who());
    expect(d.kind).toBe('block');
  });

  it('when every recipient is allowed and each by an ip entry, then the allow is byIp; by an address it is not', () => {
    const byIp = listDecision([entry('allow', 'ip', '192.0.2.0/24')], rcpts, who());
    expect(byIp).toMatchObject({ kind: 'allow', byIp: true });
    const byAddress = listDecision([entry('allow', 'address', 'news@shop.example')], rcpts, who());
    expect(byAddress).toMatchObject({ kind: 'allow', byIp: false });
    expect(byAddress.kind === 'allow' && byAddress.reason).toContain('allowed by the tenant\'s allow list (address news@shop.example matches the From header)');
  });

  it("when a mailbox's block entry matches but another recipient has no entry, then the lists decide nothing: one mailbox's list never decides another's mail", () => {
    const d = listDecision([entry('block', 'domain', 'shop.example', 'a@tenant.example')], rcpts, who());
    expect(d).toEqual({ kind: 'none', reason: "policy: lists not applied, the recipients' lists disagree (a@tenant.example blocked, b@tenant.example unlisted)" });
  });

  it("when a mailbox's allow entry matches and the message has only that recipient, then it is allowed; with a second recipient it is not", () => {
    const entries = [entry('allow', 'address', 'news@shop.example', 'a@tenant.example')];
    expect(listDecision(entries, ['A@Tenant.example'], who())).toMatchObject({ kind: 'allow' });
    expect(listDecision(entries, rcpts, who())).toMatchObject({ kind: 'none' });
  });

  it('when each recipient is blocked by its own mailbox entry, then the message is blocked', () => {
    const entries = [entry('block', 'domain', 'shop.example', 'a@tenant.example'), entry('block', 'ip', '192.0.2.10', 'b@tenant.example')];
    expect(listDecision(entries, rcpts, who())).toMatchObject({ kind: 'block' });
  });

  it("when one recipient is allowed by its mailbox list and the other blocked by its own, then neither list decides", () => {
    const entries = [entry('allow', 'domain', 'shop.example', 'a@tenant.example'), entry('block', 'domain', 'shop.example', 'b@tenant.example')];
    expect(listDecision(entries, rcpts, who())).toMatchObject({ kind: 'none', reason: expect.stringContaining('a@tenant.example allowed, b@tenant.example blocked') });
  });

  it("when a tenant-wide block matches and a mailbox allows, then block wins for that mailbox too", () => {
    const entries = [entry('block', 'domain', 'shop.example'), entry('allow', 'address', 'news@shop.example', 'a@tenant.example')];
    expect(listDecision(entries, ['a@tenant.example'], who())).toMatchObject({ kind: 'block' });
  });
});
