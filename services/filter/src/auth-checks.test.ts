import { generateKeyPairSync } from 'node:crypto';
import { authenticate, dkimSign, type DKIMSignOptions } from 'mailauth';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { staticResolver, type DnsResolve, type StaticZone } from '@moat/runtime';
import { authenticateMessage } from './auth-checks.js';

const log = pino({ level: 'silent' });
const authservId = 'mx.moat.test';

const message = [
  'From: Alice <alice@signed.test>',
  'To: <bob@customer.test>',
  'Subject: quarterly numbers',
  'Date: Mon, 1 Jan 2024 10:00:00 +0000',
  'Message-ID: <m1@signed.test>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'The numbers are in.',
  '',
].join('\r\n');

let signed: Buffer;
let zone: StaticZone;

beforeAll(async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // mailauth 4.13's bundled types declare top-level signing fields; its signer reads only `signatureData`.
  const sig = await dkimSign(message, { signatureData: [{ signingDomain: 'signed.test', selector: 'sel1', privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) }] } as unknown as DKIMSignOptions);
  signed = Buffer.from(sig.signatures + message);
  zone = {
    'sel1._domainkey.signed.test': { TXT: [[`v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`]] },
    'signed.test': { TXT: [['v=spf1 ip4:127.0.0.1 -all']] },
    '_dmarc.signed.test': { TXT: [['v=DMARC1; p=reject']] },
  };
});

const input = { ip: '127.0.0.1', helo: 'client.test', mailFrom: 'bounces@signed.test' };
const result = (outcome: { checks: Array<{ check: string; result: string }> }, check: string) => outcome.checks.find((c) => c.check === check)?.result;

describe('authenticateMessage', () => {
  it('when the message is signed and the sender authorised, then dkim, spf and dmarc pass', async () => {
    const outcome = await authenticateMessage(signed, input, { authservId, resolver: staticResolver(zone), checkTimeoutMs: 5_000, log });
    expect(result(outcome, 'dkim')).toBe('pass');
    expect(result(outcome, 'spf')).toBe('pass');
    expect(result(outcome, 'dmarc')).toBe('pass');
    expect(result(outcome, 'arc')).toBe('none');
    expect(outcome.authResults).toMatch(/^mx\.moat\.test; dkim=pass header\.i=@signed\.test header\.s=sel1 /);
    expect(outcome.authResults).toContain('; spf=pass ');
    expect(outcome.authResults).toContain('; dmarc=pass ');
    for (const check of ['dkim', 'spf', 'arc', 'dmarc'] as const) expect(outcome.durations[check]).toBeGreaterThanOrEqual(0);
  });

  it("when composed, then the Authentication-Results value equals mailauth's authenticate() for the same input", async () => {
    const resolver = staticResolver(zone);
    for (const raw of [signed, Buffer.from(message), Buffer.from(message.replace('The numbers', 'Other numbers'))]) {
      const ours = await authenticateMessage(raw, input, { authservId, resolver, checkTimeoutMs: 5_000, log });
      const theirs = await authenticate(raw, { ip: input.ip, helo: input.helo, sender: input.mailFrom, mta: authservId, resolver: resolver as never, disableBimi: true });
      const arLine = theirs.headers.split(/\r\n(?=\S)/).find((h) => h.startsWith('Authentication-Results:'))!;
      expect(ours.authResults).toBe(arLine.replace(/^Authentication-Results: /, '').replace(/\r\n(?=[ \t])/g, '').replace(/\r\n$/, ''));
    }
  });

  it('when the body was changed after signing, then dkim does not pass and the reason says why', async () => {
    const tampered = Buffer.from(signed.toString().replace('The numbers are in.', 'The numbers are out.'));
    const outcome = await authenticateMessage(tampered, input, { authservId, resolver: staticResolver(zone), checkTimeoutMs: 5_000, log });
    const dkim = outcome.checks.find((c) => c.check === 'dkim')!;
    // mailauth reports a body hash mismatch (RFC 6376 §6.1.3) as neutral, with the reason in the comment.
    expect(dkim.result).toBe('neutral');
    expect(dkim.reason).toContain('d=signed.test s=sel1');
    expect(dkim.reason).toMatch(/body hash/);
  });

  it('when nothing is published in DNS, then the checks say none instead of failing', async () => {
    const outcome = await authenticateMessage(Buffer.from(message), { ...input, mailFrom: 'x@unknown.test' }, { authservId, resolver: staticResolver({}), checkTimeoutMs: 5_000, log });
    expect(result(outcome, 'dkim')).toBe('none');
    expect(result(outcome, 'spf')).toBe('none');
    expect(result(outcome, 'dmarc')).toBe('none');
  });

  it('when the reverse-path is null, then SPF checks the HELO identity (RFC 7208 §2.4)', async () => {
    const outcome = await authenticateMessage(Buffer.from(message), { ...input, mailFrom: '' }, { authservId, resolver: staticResolver(zone), checkTimeoutMs: 5_000, log });
    expect(outcome.authResults).toContain('smtp.mailfrom=postmaster@client.test');
  });

  it('when DNS answers with a server failure, then the checks are temperror, not a crash', async () => {
    const servfail: DnsResolve = async (name) => {
      throw Object.assign(new Error(`queryTxt ESERVFAIL ${name}`), { code: 'ESERVFAIL' });
    };
    const outcome = await authenticateMessage(signed, input, { authservId, resolver: servfail, checkTimeoutMs: 5_000, log });
    expect(result(outcome, 'dkim')).toBe('temperror');
    expect(result(outcome, 'spf')).toBe('temperror');
    expect(outcome.authResults).toContain('dkim=temperror');
    expect(outcome.authResults).toContain('spf=temperror');
  });

  it('when DNS never answers, then each check gives up at its bound as temperror and dmarc is not guessed', async () => {
    const silent: DnsResolve = () => new Promise(() => {});
    const started = Date.now();
    const outcome = await authenticateMessage(signed, input, { authservId, resolver: silent, checkTimeoutMs: 200, log });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(result(outcome, 'dkim')).toBe('temperror');
    expect(result(outcome, 'spf')).toBe('temperror');
    expect(result(outcome, 'dmarc')).toBe('temperror');
    expect(outcome.checks.find((c) => c.check === 'spf')!.reason).toBe('spf check timed out after 200 ms');
    expect(outcome.authResults).toBe(
      'mx.moat.test; dkim=temperror (dkim check timed out after 200 ms); spf=temperror (spf check timed out after 200 ms); dmarc=temperror (not evaluated: the SPF or DKIM check did not complete)',
    );
  });
});
