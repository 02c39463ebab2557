import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { RecipientPolicy, type ProtectedDomain } from './recipient-policy.js';

const log = pino({ level: 'silent' });
const tenantA = '00000000-0000-4000-8000-00000000000a';
const tenantB = '00000000-0000-4000-8000-00000000000b';
const domains: Record<string, ProtectedDomain> = { 'a.example': { tenantId: tenantA }, 'a2.example': { tenantId: tenantA }, 'b.example': { tenantId: tenantB } };
const lookups: string[] = [];
const find = async (name: string) => {
  lookups.push(name);
  return domains[name] ?? null;
};
const policy = (max = 100) => new RecipientPolicy(find, max, log);
const none = { tenantId: null, accepted: [] };

describe('RecipientPolicy', () => {
  it('when the domain is protected, then the recipient is accepted and fixes its tenant', async () => {
    expect(await policy().decide('User@A.Example', none)).toEqual({ accept: true, tenantId: tenantA, address: 'User@a.example' });
  });

  it('when the domain is not protected, then the answer is 550 5.7.1 Relaying denied', async () => {
    const d = await policy().decide('user@elsewhere.example', none);
    expect(d).toMatchObject({ accept: false, why: 'not-protected', reply: { responseCode: 550, message: '5.7.1 Relaying denied' } });
  });

  it('when the address is a relay trick, then it is refused without a lookup', async () => {
    lookups.length = 0;
    const d = await policy().decide('user%elsewhere.example@a.example', none);
    expect(d).toMatchObject({ accept: false, why: 'percent-hack', reply: { responseCode: 550, message: '5.7.1 Relaying denied' } });
    expect(lookups).toEqual([]);
  });

  it("when another tenant's domain follows, then it gets 452 4.5.3 and the same tenant's other domain is fine", async () => {
    const tx = { tenantId: tenantA, accepted: ['one@a.example'] };
    expect(await policy().decide('two@b.example', tx)).toMatchObject({ accept: false, why: 'other-tenant', reply: { responseCode: 452, message: '4.5.3 Recipients of another organisation: send separately' } });
    expect(await policy().decide('two@a2.example', tx)).toMatchObject({ accept: true, tenantId: tenantA });
  });

  it('when the limit is reached, then the next recipient gets 452 4.5.3 but a repeated one still passes', async () => {
    const tx = { tenantId: tenantA, accepted: ['one@a.example', 'two@a.example'] };
    expect(await policy(2).decide('three@a.example', tx)).toMatchObject({ accept: false, reply: { responseCode: 452, message: '4.5.3 Too many recipients' } });
    expect(await policy(2).decide('TWO@a.example', tx)).toMatchObject({ accept: true });
  });

  it('when the lookup fails, then the answer is 451 4.3.0, never a 5xx', async () => {
    const broken = new RecipientPolicy(async () => Promise.reject(new Error('connection refused')), 100, log);
    expect(await broken.decide('user@a.example', none)).toMatchObject({ accept: false, why: 'lookup-failed', reply: { responseCode: 451, message: '4.3.0 Temporary failure, please try again later' } });
  });
});
