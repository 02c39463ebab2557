import { randomBytes } from 'node:crypto';
import PostalMime from 'postal-mime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import * as archive from '@moat/archive';
import { DigestRepository, keyringFromConfig, MessageStore, newDigestNonce, signDigestLink } from '@moat/store';
import { CustomerServer, createTestEnv, eicar, eventually, makeMessage, makeMessageWithAttachment, sendSmtp, silentLog, startClamd, testPool, type TestClamd, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// Quarantine digests end to end (issue 5): spam (GTUBE) and a virus (EICAR, a real clamd) are
// quarantined for a mailbox; the archive's digest job — on two archive replicas at once — sends
// one digest through the normal delivery path; its spam links release exactly once (GET never
// releases; a second POST and two concurrent POSTs do not deliver twice), an expired link and
// the virus (no link; a forged or even a genuinely signed one) are refused; a second run sends
// nothing new, and a digest whose publish was lost (a crash) is sent by the next run.

const gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const publicUrl = 'https://moat.test';
// A day: the stack's own ticks (every minute, real time) never reach the period the test digests
// (it runs the job with a clock a day ahead), so every digest here is the test's own doing.
const intervalMs = 86_400_000;
const linkKey = randomBytes(32);
/** The key before a rotation: still accepted by the gateway (MOAT_DIGEST_LINK_PREVIOUS_KEYS). */
const previousLinkKey = randomBytes(32);

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let clamd: TestClamd;
/** A second archive: the other replica. */
let replica: archive.ArchiveService;
const customer = new CustomerServer();
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;

const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
const digestsFor = (rcpt: string) => receivedBy(rcpt).filter((tx) => /^X-Moat-Digest:/m.test(tx.data.toString('latin1')));
const releasedFor = (rcpt: string, subject: string) => receivedBy(rcpt).filter((tx) => tx.data.toString('latin1').includes(`Subject: ${subject}`));
/** The job's clock: a day ahead, so the period that holds the test's messages is complete. */
const aDayAhead = () => new Date(Date.now() + intervalMs);
const digestJob = (): Pick<archive.DigestJob, 'runOnce'> => (stack.service!('archive') as unknown as archive.ArchiveService).digests!;
const gateway = () => `http://127.0.0.1:${stack.httpPort}`;
/** A link from the digest, pointed at this test's gateway instead of MOAT_PUBLIC_URL. */
const local = (link: string) => link.replace(publicUrl, gateway());

async function quarantine(rcpt: string, raw: Buffer): Promise<string> {
  const sent = await sendSmtp({ port: stack.smtpPort, from: 'spammer@sender.example', to: [rcpt], raw });
  expect(sent.code).toBe(250);
  const id = messageIdOf(sent.response);
  await eventually(async () => (await api.request('GET', `/api/v1/quarantine/${id}`)).body?.state === 'quarantined', 20_000);
  return id;
}

const spam = (rcpt: string, subject: string) => quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject, body: `Cheap offer\r\n${gtube}` }));
const virus = (rcpt: string, subject: string) =>
  quarantine(rcpt, makeMessageWithAttachment({ from: 'spammer@sender.example', to: [rcpt], subject, body: 'see attached', attachment: { name: 'invoice.com', content: eicar } }));

async function digestOf(rcpt: string): Promise<{ subject: string; text: string; html: string; links: string[]; mailFrom: string }> {
  const [tx] = digestsFor(rcpt);
  const parsed = await PostalMime.parse(tx!.data);
  const text = parsed.text ?? '';
  const links = [...text.matchAll(/https:\/\/moat\.test\/digest\/release\/[A-Za-z0-9_.-]+/g)].map((m) => m[0]);
  return { subject: parsed.subject ?? '', text, html: parsed.html ?? '', links, mailFrom: tx!.mailFrom };
}

const post = (url: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });

beforeAll(async () => {
  await customer.start();
  clamd = await startClamd();
  t = await createTestEnv({
    MOAT_CLAMD_ADDRESS: `127.0.0.1:${clamd.port}`,
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_DIGEST_INTERVAL_MS: String(intervalMs),
    MOAT_DIGEST_LINK_KEY: linkKey.toString('base64'),
    MOAT_DIGEST_LINK_PREVIOUS_KEYS: previousLinkKey.toString('base64'),
    MOAT_DIGEST_FROM: 'quarantine@moat.test',
    MOAT_PUBLIC_URL: `${publicUrl}/`,
  });
  stack = await startStack(t.env);
  api = new ApiClient(gateway(), t.env.MOAT_BOOTSTRAP_TOKEN!);
  replica = await archive.start(loadConfig(archive.configSchema, t.env), silentLog);
  domain = `d${uniq()}.example`;
  await api.provision('Digests', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
}, 120_000);

afterAll(async () => {
  await replica?.stop();
  await stack?.stop();
  await clamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('quarantine digests (end to end)', () => {
  const bob = () => `bob${suffix}@${domain}`;
  const suffix = uniq();
  const subjects = { first: `Cheap watches ${suffix}`, second: `Lottery win ${suffix}`, virus: `Invoice ${suffix}` };
  let ids: { first: string; second: string; virus: string };
  let links: string[];

  it('when two archive replicas run the digest at once, then the mailbox receives one digest listing its spam with release links and its virus without one', async () => {
    ids = { first: await spam(bob(), subjects.first), second: await spam(bob(), subjects.second), virus: await virus(bob(), subjects.virus) };
    const now = aDayAhead();
    const runs = await Promise.all([digestJob().runOnce(now), replica.digests!.runOnce(now)]);
    expect(runs.map((r) => r.sent).sort()).toEqual([0, 1]);
    await eventually(() => digestsFor(bob()).length === 1, 30_000);
    const d = await digestOf(bob());
    expect(d.subject).toBe(`Quarantine digest: 3 new messages held for ${bob()}`);
    expect(d.mailFrom).toBe('');
    expect(d.text).toContain(`Subject: ${subjects.first}`);
    expect(d.text).toContain(`Subject: ${subjects.virus}`);
    expect(d.text).toContain('Only an administrator can release this message (quarantined as a virus).');
    expect(d.html).toContain(subjects.second);
    // Oldest first: the first spam, the second, and no link for the virus.
    expect(d.links).toHaveLength(2);
    links = d.links;
    expect(d.html.match(/<a href=/g)).toHaveLength(2);
    // Nothing was released by sending the digest.
    expect(releasedFor(bob(), subjects.first)).toHaveLength(0);
  }, 90_000);

  it('when the link is opened (GET, as a link scanner would), then a confirmation page shows and nothing is released; no bearer token is needed and none is let through elsewhere', async () => {
    const res = await fetch(local(links[0]!));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('Release this message?');
    expect(html).toContain('<form method="post">');
    expect(html).toContain(subjects.first);
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none'; style-src 'sha256-[^']+'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-store');
    await sleep(2_000);
    expect(releasedFor(bob(), subjects.first)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/quarantine/${ids.first}`)).body.state).toBe('quarantined');
    // The API still wants its bearer token.
    expect((await fetch(`${gateway()}/api/v1/quarantine/${ids.first}`)).status).toBe(401);
    expect((await fetch(`${gateway()}/api/v1/quarantine/${ids.first}/release`, { method: 'POST' })).status).toBe(401);
  }, 30_000);

  it('when the release is confirmed (POST), then the message arrives exactly once; a second POST answers 410 and delivers nothing', async () => {
    const res = await post(local(links[0]!));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<h1>Released</h1>');
    await eventually(() => releasedFor(bob(), subjects.first).length === 1, 30_000);
    const again = await post(local(links[0]!));
    expect(again.status).toBe(410);
    expect(await again.text()).toContain('already used');
    // A GET after use says so too, with no form.
    const seen = await fetch(local(links[0]!));
    expect(seen.status).toBe(410);
    expect(await seen.text()).not.toContain('<form');
    await sleep(3_000);
    expect(releasedFor(bob(), subjects.first)).toHaveLength(1);
    const released = await api.request('GET', `/api/v1/quarantine/${ids.first}`);
    expect(released.body).toMatchObject({ state: 'released', stateChangedBy: `digest:${bob()}` });
    const db = testPool(t);
    try {
      const audit = await db.query(`SELECT actor, detail FROM audit_log WHERE action = 'quarantine.release' AND target = $1`, [ids.first]);
      expect(audit.rows).toEqual([expect.objectContaining({ actor: `digest:${bob()}`, detail: expect.objectContaining({ via: 'digest-link', alreadyDone: false }) })]);
    } finally {
      await db.end();
    }
  }, 60_000);

  it('when the same link is posted twice at once, then one releases, the other answers 410, and the message arrives once', async () => {
    const [a, b] = await Promise.all([post(local(links[1]!)), post(local(links[1]!))]);
    expect([a.status, b.status].sort()).toEqual([200, 410]);
    await eventually(() => releasedFor(bob(), subjects.second).length === 1, 30_000);
    await sleep(3_000);
    expect(releasedFor(bob(), subjects.second)).toHaveLength(1);
  }, 60_000);

  it('when the link key was rotated, then links signed with the previous key still open while it is listed, and links of any other key do not', async () => {
    const rcpt = `dave${uniq()}@${domain}`;
    const id = await spam(rcpt, `Rotated ${uniq()}`);
    const link = { messageId: id, mailbox: rcpt, expiresAt: new Date(Date.now() + 3_600_000), nonce: newDigestNonce() };
    const old = await fetch(`${gateway()}/digest/release/${signDigestLink(previousLinkKey, link)}`);
    expect(old.status).toBe(200);
    expect(await old.text()).toContain('Release this message?');
    const other = await fetch(`${gateway()}/digest/release/${signDigestLink(randomBytes(32), link)}`);
    expect(other.status).toBe(400);
    // Out of the way of the digest runs below.
    expect((await api.request('DELETE', `/api/v1/quarantine/${id}`)).status).toBe(200);
  }, 60_000);

  it('when a link has expired, then GET and POST answer 410 and nothing is released', async () => {
    const rcpt = `carol${uniq()}@${domain}`;
    const id = await spam(rcpt, `Expired ${uniq()}`);
    const token = signDigestLink(linkKey, { messageId: id, mailbox: rcpt, expiresAt: new Date(Date.now() - 1_000), nonce: newDigestNonce() });
    const url = `${gateway()}/digest/release/${token}`;
    expect((await fetch(url)).status).toBe(410);
    const res = await post(url);
    expect(res.status).toBe(410);
    expect(await res.text()).toContain('expired');
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('quarantined');
    // Out of the way of the digest runs below.
    expect((await api.request('DELETE', `/api/v1/quarantine/${id}`)).status).toBe(200);
  }, 60_000);

  it('when a link for the virus is forged, or even signed with the real key, then it is refused and the virus stays in quarantine', async () => {
    const link = { messageId: ids.virus, mailbox: bob(), expiresAt: new Date(Date.now() + 3_600_000), nonce: newDigestNonce() };
    const forged = await post(`${gateway()}/digest/release/${signDigestLink(randomBytes(32), link)}`);
    expect(forged.status).toBe(400);
    const genuine = await post(`${gateway()}/digest/release/${signDigestLink(linkKey, link)}`);
    expect(genuine.status).toBe(403);
    expect(await genuine.text()).toContain('An administrator must release this message');
    // Another mailbox's link for a spam message is no link for this one.
    const stranger = await post(`${gateway()}/digest/release/${signDigestLink(linkKey, { ...link, messageId: ids.first, mailbox: `mallory@${domain}` })}`);
    expect(stranger.status).toBe(404);
    expect((await post(`${gateway()}/digest/release/not-a-token`)).status).toBe(400);
    await sleep(2_000);
    expect(releasedFor(bob(), subjects.virus)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/quarantine/${ids.virus}`)).body.state).toBe('quarantined');
  }, 60_000);

  it('when the digest runs again, then nothing new is sent', async () => {
    const again = await digestJob().runOnce(aDayAhead());
    expect(again).toEqual({ sent: 0, republished: 0 });
    await sleep(2_000);
    expect(digestsFor(bob())).toHaveLength(1);
  }, 30_000);

  it('when a run recorded a digest but died before publishing it, then the next run publishes it and the mailbox receives it once', async () => {
    const rcpt = `dave${uniq()}@${domain}`;
    await spam(rcpt, `Crash ${uniq()}`);
    // The same job as the archive's, whose broker fails after the commit: the state a crash leaves.
    const db = testPool(t);
    const crashing = new archive.DigestJob({
      digests: new DigestRepository(db),
      store: new MessageStore(db, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' })),
      broker: {
        envelope: () => {
          throw new Error('process died');
        },
        publish: async () => {},
      },
      intervalMs,
      linkKey,
      linkTtlMs: 3_600_000,
      publicUrl,
      from: 'quarantine@moat.test',
      maxItems: 100,
      log: silentLog,
    });
    const now = aDayAhead();
    await expect(crashing.runOnce(now)).rejects.toThrow('process died');
    await db.end();
    await sleep(2_000);
    expect(digestsFor(rcpt)).toHaveLength(0);
    // The next run (half a minute later: the dead run's replica might still be publishing before that).
    const next = await replica.digests!.runOnce(new Date(now.getTime() + 31_000));
    expect(next).toEqual({ sent: 0, republished: 1 });
    await eventually(() => digestsFor(rcpt).length === 1, 30_000);
    expect((await digestJob().runOnce(new Date(now.getTime() + 62_000))).sent).toBe(0);
    await sleep(2_000);
    expect(digestsFor(rcpt)).toHaveLength(1);
  }, 90_000);
});
