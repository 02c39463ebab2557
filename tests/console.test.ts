import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CustomerServer, createTestEnv, eicar, eventually, makeMessage, makeMessageWithAttachment, sendSmtp, startClamd, type TestClamd, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// The web console in a real browser (Debian's chromium driven by playwright-core): sign in with
// an API key, list and search a tenant's quarantine, open a message's text preview, release,
// delete, and see the API's refusal when a key may not release a virus. Message content that
// looks like markup must stay text.

// What the functions passed to page.evaluate/waitForFunction see in the browser (this file is
// compiled for Node, without the DOM library).
declare const document: any;
declare const window: any;
declare const sessionStorage: any;

const chromiumPath = '/usr/bin/chromium';
let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let clamd: TestClamd;
let browser: Browser;
const customer = new CustomerServer();
/** Uncaught errors in the console's own script: every test ends with none. */
const pageErrors: string[] = [];
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
let domain: string;
let tenantId: string;
let otherTenantId: string;
/** quarantine:read + quarantine:write (not a tenant admin). */
let plainToken: string;
const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
const consoleUrl = () => `http://127.0.0.1:${stack.httpPort}/console/`;

async function keyFor(tenant: string, scopes: string[]): Promise<string> {
  const res = await api.request('POST', `/api/v1/tenants/${tenant}/api-keys`, { name: `console-${uniq()}`, scopes });
  expect(res.status).toBe(201);
  return res.body.key as string;
}

/** Sends a message and waits until the quarantine has it. */
async function quarantine(rcpt: string, raw: Buffer): Promise<string> {
  const sent = await sendSmtp({ port: stack.smtpPort, from: 'spammer@sender.example', to: [rcpt], raw });
  expect(sent.code).toBe(250);
  const id = messageIdOf(sent.response);
  await eventually(async () => (await api.request('GET', `/api/v1/quarantine/${id}`)).status === 200, 30_000);
  return id;
}

/** Signs in and waits for the page a key lands on (the quarantine, or the archive for an archive-only key). */
async function signedIn(token: string, landing = '#quarantine'): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(consoleUrl());
  await page.fill('#api-key', token);
  await page.click('button[type=submit]');
  await page.waitForSelector(landing);
  return page;
}

const rowSubjects = (page: Page) => page.$$eval('#quarantine tbody td.subject', (tds) => tds.map((td) => td.textContent));

beforeAll(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} not found: apt-get install chromium (.ci/run does)`);
  await customer.start();
  clamd = await startClamd();
  t = await createTestEnv({ MOAT_CLAMD_ADDRESS: `127.0.0.1:${clamd.port}`, MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  domain = `c${uniq()}.example`;
  ({ tenantId } = await api.provision('Console Tenant', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]));
  ({ tenantId: otherTenantId } = await api.provision('Console Other', [{ name: `co${uniq()}.example`, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]));
  plainToken = await keyFor(tenantId, ['quarantine:read', 'quarantine:write']);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await clamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

describe('web console (real browser)', () => {
  it('when the console is fetched, then it carries a strict Content-Security-Policy and no inline script', async () => {
    const res = await fetch(consoleUrl());
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const html = await res.text();
    expect(html).not.toMatch(/<script>(?!<)/);
    expect((await fetch(`http://127.0.0.1:${stack.httpPort}/console/js/main.js`)).headers.get('content-type')).toMatch(/javascript/);
  });

  it('when a key that is not valid signs in, then the page says so and shows nothing', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(consoleUrl());
    await page.fill('#api-key', 'moat_not-a-real-key');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.getElementById('error')!.textContent !== '');
    expect(await page.textContent('#error')).toMatch(/not valid/);
    expect(await page.$('#quarantine')).toBeNull();
    await page.close();
  }, 30_000);

  it('when a tenant key signs in, then it lists the tenant’s quarantine, searches it, and shows a subject that looks like markup as text', async () => {
    const rcpt = `list${uniq()}@${domain}`;
    const tag = uniq();
    const hostile = `Win <img src=x onerror="window.__pwned=1"> ${tag}`;
    const id = await quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject: hostile, body: `Cheap offer\r\n${gtube}` }));
    const calm = await quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject: `Plain ${tag}`, body: gtube }));
    const page = await signedIn(plainToken);
    expect(await page.textContent('#tenant-name')).toBe('Console Tenant');
    await page.fill('input[name=rcpt]', rcpt);
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction((n) => document.querySelectorAll('#quarantine tbody tr').length === n, 2);
    expect((await rowSubjects(page)).sort()).toEqual([hostile, `Plain ${tag}`].sort());
    expect(await page.$$eval('#quarantine tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-message-id')).sort())).toEqual([id, calm].sort());
    expect(await page.$('#quarantine img')).toBeNull();
    expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
    // Words narrow it down; the URL fragment keeps the search (a reload shows the same list).
    await page.fill('input[name=q]', 'onerror');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#quarantine tbody tr').length === 1);
    expect(await rowSubjects(page)).toEqual([hostile]);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#quarantine tbody tr').length === 1);
    expect(await page.inputValue('input[name=q]')).toBe('onerror');
    await page.close();
  }, 90_000);

  it('when a message is opened and released, then the preview is text only and the customer receives it once', async () => {
    const rcpt = `rel${uniq()}@${domain}`;
    const subject = `Release ${uniq()}`;
    const id = await quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject, body: `Dear customer,\r\nthe <b>quarterly</b> figures.\r\n${gtube}` }));
    const page = await signedIn(plainToken);
    await page.goto(`${consoleUrl()}#/quarantine/${id}`);
    await page.waitForSelector('#preview');
    expect(await page.textContent('#subject')).toBe(subject);
    expect(await page.textContent('#preview')).toContain('the <b>quarterly</b> figures.');
    expect(await page.$('#preview b')).toBeNull();
    expect(await page.textContent('#reasons')).toMatch(/GTUBE/);
    await page.click('button:has-text("Release")');
    await page.waitForFunction(() => /Released/.test(document.getElementById('status')!.textContent ?? ''));
    expect(await page.textContent('#state')).toMatch(/^released by console-/);
    // The action buttons are gone: a second click cannot happen from this page.
    expect(await page.$('button:has-text("Release")')).toBeNull();
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 30_000);
    await sleep(2_000);
    expect(receivedBy(rcpt)).toHaveLength(1);
    await page.close();
  }, 90_000);

  it('when a key without quarantine:release-dangerous releases a virus, then the page shows the API’s refusal and nothing is delivered', async () => {
    const rcpt = `virus${uniq()}@${domain}`;
    const id = await quarantine(rcpt, makeMessageWithAttachment({ from: 'spammer@sender.example', to: [rcpt], subject: 'Invoice', body: 'See attached.', attachment: { name: 'invoice.com', content: eicar } }));
    const page = await signedIn(plainToken);
    await page.goto(`${consoleUrl()}#/quarantine/${id}`);
    await page.waitForSelector('#attachments');
    expect(await page.textContent('#attachments')).toMatch(/invoice\.com/);
    expect(await page.$('button:has-text("Not spam")')).toBeNull();
    await page.click('button:has-text("Release")');
    await page.waitForFunction(() => document.getElementById('error')!.textContent !== '');
    expect(await page.textContent('#error')).toMatch(/quarantine:release-dangerous/);
    expect(await page.textContent('#state')).toBe('quarantined');
    await sleep(1_500);
    expect(receivedBy(rcpt)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('quarantined');
    await page.close();
  }, 90_000);

  it('when a message is deleted, then the page asks once more, and the message is gone for good', async () => {
    const rcpt = `del${uniq()}@${domain}`;
    const id = await quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject: 'Delete me', body: gtube }));
    const page = await signedIn(plainToken);
    await page.goto(`${consoleUrl()}#/quarantine/${id}`);
    await page.waitForSelector('#preview');
    await page.click('button.danger');
    expect(await page.textContent('button.danger')).toBe('Really delete?');
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('quarantined');
    await page.click('button.danger');
    await page.waitForFunction(() => /Deleted/.test(document.getElementById('status')!.textContent ?? ''));
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('deleted');
    await page.close();
  }, 90_000);

  it('when a received message is marked as spam in the archive, then the tenant’s filter has the label, once', async () => {
    const rcpt = `arch${uniq()}@${domain}`;
    const tag = uniq();
    const sent = await sendSmtp({ port: stack.smtpPort, from: 'news@sender.example', to: [rcpt], raw: makeMessage({ from: 'news@sender.example', to: [rcpt], subject: `Weekly deals ${tag}`, body: 'Our offers this week.' }) });
    expect(sent.code).toBe(250);
    const id = messageIdOf(sent.response);
    await eventually(async () => ((await api.request('GET', `/api/v1/tenants/${tenantId}/archive?q=${tag}`)).body.items?.length ?? 0) === 1, 30_000);
    // A key that may read the archive and label, not the quarantine, lands on the archive.
    const key = await keyFor(tenantId, ['archive:read', 'spam-feedback:write']);
    const page = await signedIn(key, '#archive');
    expect(await page.$('#quarantine')).toBeNull();
    await page.fill('input[name=q]', tag);
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#archive tbody tr').length === 1);
    expect(await page.textContent('#archive td.subject')).toBe(`Weekly deals ${tag}`);
    await page.click(`#archive tr[data-message-id="${id}"] button[data-label=spam]`);
    await page.waitForFunction(() => /Marked as spam/.test(document.getElementById('status')!.textContent ?? ''));
    expect(await page.textContent(`#archive tr[data-message-id="${id}"] .label-outcome`)).toBe('Marked as spam.');
    const labels = await api.request('GET', `/api/v1/tenants/${tenantId}/spam-feedback?messageId=${id}`);
    expect(labels.body.items.map((i: { label: string }) => i.label)).toEqual(['spam']);
    // The same label again records nothing new.
    await page.click(`#archive tr[data-message-id="${id}"] button[data-label=spam]`);
    await page.waitForFunction(() => /already marked/.test(document.getElementById('status')!.textContent ?? ''));
    expect((await api.request('GET', `/api/v1/tenants/${tenantId}/spam-feedback?messageId=${id}`)).body.items).toHaveLength(1);
    // The fragment keeps the search: a reload shows the same row.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#archive tbody tr').length === 1);
    await page.close();
    // A key with both lands on the quarantine and reaches the archive from the bar.
    const both = await signedIn(await keyFor(tenantId, ['quarantine:read', 'archive:read']));
    await both.click('#nav-archive');
    await both.waitForSelector('#archive');
    await both.close();
  }, 90_000);

  it('when an operator signs in, then it picks among tenants and each tenant shows only its own quarantine', async () => {
    const rcpt = `op${uniq()}@${domain}`;
    const subject = `Operator view ${uniq()}`;
    await quarantine(rcpt, makeMessage({ from: 'spammer@sender.example', to: [rcpt], subject, body: gtube }));
    const page = await signedIn(t.env.MOAT_BOOTSTRAP_TOKEN!);
    const options = await page.$$eval('#tenant option', (os) => os.map((o) => (o as any).value));
    expect(options).toEqual(expect.arrayContaining([tenantId, otherTenantId]));
    await page.selectOption('#tenant', tenantId);
    await page.waitForFunction((s) => [...document.querySelectorAll('#quarantine td.subject')].some((td: any) => td.textContent === s), subject);
    await page.selectOption('#tenant', otherTenantId);
    await page.waitForFunction(() => /No messages match/.test(document.querySelector('main p.muted')?.textContent ?? ''));
    expect(await rowSubjects(page)).toEqual([]);
    // Signing out forgets the key: a reload lands on the sign-in form.
    await page.click('#sign-out');
    await page.waitForSelector('#api-key');
    await page.reload();
    await page.waitForSelector('#api-key');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  }, 90_000);
});
