import { describe, expect, it } from 'vitest';
import { combine, defaultSpamThresholds, statusFor } from './classify.js';
import { emptyCounts, learn } from './bayes.js';
import { readFileSync } from 'node:fs';
import { defaultModelPath, loadModel, parseModel, serializeModel, tunedBayesParams } from './model.js';
import { gtube } from './rules.js';
import { SpamCheck } from './spam-check.js';

const model = loadModel();
const check = new SpamCheck(model, defaultSpamThresholds);
const headers = 'From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n';

describe('spam check with the shipped model', () => {
  it('when a message carries GTUBE, then it is spam, quarantined, and the headers say so', async () => {
    const out = await check.run(Buffer.from(`${headers}Subject: test\r\n\r\n${gtube}\r\n`), []);
    expect(out.verdict).toBe('quarantine');
    expect(out.check).toMatchObject({ check: 'spam', result: 'fail' });
    expect(out.score).toBeGreaterThanOrEqual(1000);
    expect(out.headers.status).toMatch(/^spam score=10\d\d\.\d\d quarantine=5\.2 unsure=4 bayes=0\.\d{3} clues=\d+ GTUBE\(\+1000\)/);
    expect(out.reasons[0]).toMatch(/^spam: score \d+/);
  });

  it('when a message reads like a mailing-list technical discussion, then it is delivered as ham', async () => {
    const body = 'Hi all,\r\n\r\nI tried the patch against the current CVS tree and the build fails in the configure step on Red Hat 7.3.\r\nDoes anyone know whether the Makefile needs the new autoconf? Thanks for any pointers.\r\n\r\nCheers,\r\nBob\r\n';
    const out = await check.run(Buffer.from(`${headers}Subject: Re: build fails with new autoconf\r\nUser-Agent: Mutt/1.4i\r\n\r\n${body}`), []);
    expect(out.verdict).toBe('deliver');
    expect(out.check.result).toBe('pass');
    expect(out.outcome!.status).toBe('ham');
    expect(out.reasons).toEqual([]);
  });

  it('when a message reads like bulk advertising, then it scores as spam', async () => {
    const body = '<html><body><p>Dear Friend,</p><p>You have been selected to receive a FREE gift! Act now, this limited time offer expires soon. Click here to claim your prize and remove yourself from our mailing list.</p><p>MAKE MONEY FAST from home, guaranteed income, no experience needed!!!</p><a href="http://203.0.113.7/claim">Click Here</a></body></html>';
    const out = await check.run(Buffer.from(`From: "Offers" <deals8812@bestoffers.example>\r\nTo: undisclosed-recipients:;\r\nSubject: FREE GIFT - ACT NOW!!!\r\nContent-Type: text/html\r\n\r\n${body}\r\n`), []);
    expect(out.outcome!.probability).toBeGreaterThan(0.9);
    expect(out.verdict).toBe('quarantine');
  });

  it('when the classifier itself fails, then the check is an error and the message is delivered tagged', async () => {
    const broken = new SpamCheck({ ...model, counts: null as never }, defaultSpamThresholds);
    const out = await broken.run(Buffer.from(`${headers}Subject: x\r\n\r\nhello\r\n`), []);
    expect(out.check.result).toBe('error');
    expect(out.verdict).toBe('deliver');
    expect(out.headers.status).toBe('error');
  });
});

describe('spam model file', () => {
  it('when a model is serialised and parsed back, then counts and params survive, and serialising again gives the same bytes', () => {
    const counts = emptyCounts();
    learn(counts, ['b', 'a', 'subject:"quoted"'], true);
    learn(counts, ['a', 'c'], false);
    const text = serializeModel(counts, tunedBayesParams);
    const parsed = parseModel(text, 'test');
    expect(parsed.counts.nSpam).toBe(1);
    expect(parsed.counts.nHam).toBe(1);
    expect([...parsed.counts.tokens.keys()]).toEqual(['a', 'b', 'c', 'subject:"quoted"']);
    expect(parsed.params).toEqual(tunedBayesParams);
    expect(serializeModel(parsed.counts, parsed.params)).toBe(text);
  });

  it('when a model is read line by line, then it holds exactly what JSON.parse reads, also for tokens with colons, brackets, quotes and newlines', () => {
    const counts = emptyCounts();
    learn(counts, ['a:[1', 'x":[2,3]', 'line\nbreak', '日本', 'url:example.com'], true);
    learn(counts, ['a:[1', 'plain'], false);
    const text = serializeModel(counts, tunedBayesParams);
    const viaJson = Object.entries((JSON.parse(text) as { tokens: Record<string, [number, number]> }).tokens);
    const parsed = parseModel(text, 'test');
    expect([...parsed.counts.tokens].map(([k, v]) => [k, [Math.floor(v / 2 ** 26), v % 2 ** 26]])).toEqual(viaJson);
    // The shipped model, too.
    const shipped = loadModel();
    const shippedJson = JSON.parse(readFileSync(defaultModelPath, 'utf8')) as { tokens: Record<string, [number, number]> };
    expect(shipped.counts.tokens.size).toBe(Object.keys(shippedJson.tokens).length);
  });

  it('when a model file is valid JSON in another layout (hand-edited, pretty-printed), then it is read as JSON', () => {
    const counts = emptyCounts();
    learn(counts, ['a', 'b'], true);
    learn(counts, ['b'], false);
    const pretty = JSON.stringify(JSON.parse(serializeModel(counts, tunedBayesParams)), null, 2);
    const parsed = parseModel(pretty, 'pretty.json');
    expect(parsed.counts.nSpam).toBe(1);
    expect([...parsed.counts.tokens.keys()].sort()).toEqual(['a', 'b']);
    // A broken token line in the serialised layout is not half-read: the whole file is read as JSON (and fails as such).
    const broken = serializeModel(counts, tunedBayesParams).replace('"a":[1,0]', '"a":[1,zero]');
    expect(() => parseModel(broken, 'broken.json')).toThrow(/broken.json is not JSON/);
  });

  it('when a model file is of another tokenizer version or not JSON, then loading fails with a clear message', () => {
    const counts = emptyCounts();
    learn(counts, ['a'], true);
    learn(counts, ['b'], false);
    const text = serializeModel(counts, tunedBayesParams).replace('"tokenizer":1', '"tokenizer":99');
    expect(() => parseModel(text, 'old.json')).toThrow(/trained with tokenizer 99.*retrain/);
    expect(() => parseModel('{', 'bad.json')).toThrow(/bad.json is not JSON/);
    expect(() => loadModel('/nonexistent/model.json')).toThrow(/cannot read the spam model \/nonexistent\/model.json/);
  });

  it('when the shipped model is loaded, then it holds the SpamAssassin train split counts', () => {
    expect(model.counts.nSpam).toBe(1012);
    expect(model.counts.nHam).toBe(2094);
    expect(model.counts.tokens.size).toBeGreaterThan(10_000);
  });

  it('when the Bayesian evidence is thin, then the score stays in the unsure band even with soft rules on top', () => {
    const thin = { probability: 1, clues: [{ token: 'a', probability: 0.92 }, { token: 'b', probability: 0.92 }] };
    const soft = [{ rule: 'MISSING_DATE', weight: 0.2, detail: '' }, { rule: 'MISSING_MESSAGE_ID', weight: 0.2, detail: '' }];
    const out = combine(thin, soft, defaultSpamThresholds);
    expect(out.score).toBeCloseTo(10 * (0.4 + 0.6 * 0.2 ** 2) + 0.4, 2);
    expect(out.status).toBe('unsure');
    const full = { probability: 1, clues: Array.from({ length: 10 }, (_, i) => ({ token: `t${i}`, probability: 0.99 })) };
    expect(combine(full, [], defaultSpamThresholds)).toMatchObject({ score: 10, status: 'spam' });
  });

  it('when a score is compared with the thresholds, then the bands are inclusive at their lower ends', () => {
    expect(statusFor(5.2, defaultSpamThresholds)).toBe('spam');
    expect(statusFor(5.19, defaultSpamThresholds)).toBe('unsure');
    expect(statusFor(4, defaultSpamThresholds)).toBe('unsure');
    expect(statusFor(3.99, defaultSpamThresholds)).toBe('ham');
  });
});
