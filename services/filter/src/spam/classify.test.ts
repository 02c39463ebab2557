import { describe, expect, it } from 'vitest';
import { combine, contentScore, defaultSpamThresholds, statusFor } from './classify.js';
import { emptyCounts, learn } from './bayes.js';
import { readFileSync } from 'node:fs';
import { defaultModelPath, loadModel, parseModel, serializeModel, tunedBayesParams } from './model.js';
import { emptyLogistic, type LogisticModel } from './logistic.js';
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
    expect(out.headers.status).toMatch(/^spam score=10\d\d\.\d\d quarantine=5\.3 unsure=4 bayes=0\.\d{3} logit=-?\d+\.\d\d clues=\d+ GTUBE\(\+1000\)/);
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
    const logistic: LogisticModel = { bias: -0.25, weights: new Map([['a', -1.5], ['subject:"quoted"', 0.1234]]) };
    const text = serializeModel(counts, tunedBayesParams, logistic);
    const parsed = parseModel(text, 'test');
    expect(parsed.counts.nSpam).toBe(1);
    expect(parsed.counts.nHam).toBe(1);
    expect([...parsed.counts.tokens.keys()]).toEqual(['a', 'b', 'c', 'subject:"quoted"']);
    expect(parsed.params).toEqual(tunedBayesParams);
    expect(parsed.logistic.bias).toBe(-0.25);
    expect([...parsed.logistic.weights].sort()).toEqual([['a', -1.5], ['subject:"quoted"', 0.1234]]);
    expect(text).toContain('"a":[1,1,-1.5]');
    expect(text).toContain('"b":[1,0]');
    expect(serializeModel(parsed.counts, parsed.params, parsed.logistic)).toBe(text);
    // Weights for tokens without counts would be lost on the way back: refused when writing.
    expect(() => serializeModel(counts, tunedBayesParams, { bias: 0, weights: new Map([['zzz', 1]]) })).toThrow(/1 tokens without counts \(zzz\)/);
  });

  it('when a model is read line by line, then it holds exactly what JSON.parse reads, also for tokens with colons, brackets, quotes and newlines', () => {
    const counts = emptyCounts();
    learn(counts, ['a:[1', 'x":[2,3]', 'line\nbreak', '日本', 'url:example.com'], true);
    learn(counts, ['a:[1', 'plain'], false);
    const text = serializeModel(counts, tunedBayesParams, { bias: 0.5, weights: new Map([['a:[1', 0.75], ['line\nbreak', -2]]) });
    const viaJson = Object.entries((JSON.parse(text) as { tokens: Record<string, number[]> }).tokens);
    const parsed = parseModel(text, 'test');
    expect([...parsed.counts.tokens].map(([k, v]) => {
      const weight = parsed.logistic.weights.get(k);
      return [k, [Math.floor(v / 2 ** 26), v % 2 ** 26, ...(weight === undefined ? [] : [weight])]];
    })).toEqual(viaJson);
    // The shipped model, too.
    const shipped = loadModel();
    const shippedJson = JSON.parse(readFileSync(defaultModelPath, 'utf8')) as { tokens: Record<string, number[]>; logistic: { bias: number } };
    expect(shipped.counts.tokens.size).toBe(Object.keys(shippedJson.tokens).length);
    expect(shipped.logistic.weights.size).toBe(Object.values(shippedJson.tokens).filter((e) => e.length === 3).length);
    expect(shipped.logistic.bias).toBe(shippedJson.logistic.bias);
  });

  it('when a model file is valid JSON in another layout (hand-edited, pretty-printed), then it is read as JSON', () => {
    const counts = emptyCounts();
    learn(counts, ['a', 'b'], true);
    learn(counts, ['b'], false);
    const pretty = JSON.stringify(JSON.parse(serializeModel(counts, tunedBayesParams, { bias: 1, weights: new Map([['b', 2]]) })), null, 2);
    const parsed = parseModel(pretty, 'pretty.json');
    expect(parsed.counts.nSpam).toBe(1);
    expect([...parsed.counts.tokens.keys()].sort()).toEqual(['a', 'b']);
    expect([...parsed.logistic.weights]).toEqual([['b', 2]]);
    // A broken token line in the serialised layout is not half-read: the whole file is read as JSON (and fails as such).
    const broken = serializeModel(counts, tunedBayesParams, emptyLogistic()).replace('"a":[1,0]', '"a":[1,zero]');
    expect(() => parseModel(broken, 'broken.json')).toThrow(/broken.json is not JSON/);
    // Valid JSON with a bad entry names the token.
    const badWeight = JSON.stringify({ ...JSON.parse(serializeModel(counts, tunedBayesParams, emptyLogistic())), tokens: { a: [1, 0, 'x'] } });
    expect(() => parseModel(badWeight, 'weights.json')).toThrow(/weights.json: token "a" has no valid weight/);
  });

  it('when a model file is of another tokenizer version or not JSON, then loading fails with a clear message', () => {
    const counts = emptyCounts();
    learn(counts, ['a'], true);
    learn(counts, ['b'], false);
    const text = serializeModel(counts, tunedBayesParams, emptyLogistic()).replace('"tokenizer":1', '"tokenizer":99');
    expect(() => parseModel(text, 'old.json')).toThrow(/trained with tokenizer 99.*retrain/);
    // A model of the first format (Bayes counts only) asks to be retrained.
    const v1 = serializeModel(counts, tunedBayesParams, emptyLogistic()).replace('"format":"moat-spam/2"', '"format":"moat-spam-bayes/1"');
    expect(() => parseModel(v1, 'v1.json')).toThrow(/v1.json has format moat-spam-bayes\/1, this filter reads moat-spam\/2: retrain/);
    expect(() => parseModel('{', 'bad.json')).toThrow(/bad.json is not JSON/);
    expect(() => loadModel('/nonexistent/model.json')).toThrow(/cannot read the spam model \/nonexistent\/model.json/);
  });

  it('when the shipped model is loaded, then it holds the SpamAssassin train split counts', () => {
    expect(model.counts.nSpam).toBe(1012);
    expect(model.counts.nHam).toBe(2094);
    expect(model.counts.tokens.size).toBeGreaterThan(10_000);
  });

  it('when the two statistical parts are combined, then each moves the score at most 2.5 points', () => {
    const bayes = (spamminess: number, clues = 20) => ({ probability: 0.5, spamminess, clues: Array.from({ length: clues }, (_, i) => ({ token: `t${i}`, probability: 0.99 })) });
    expect(contentScore({ bayes: bayes(0), logit: 0 })).toBe(5);
    expect(contentScore({ bayes: bayes(1e6), logit: 1e6 })).toBeCloseTo(10, 6);
    expect(contentScore({ bayes: bayes(-1e6), logit: -1e6 })).toBeCloseTo(0, 6);
    expect(contentScore({ bayes: bayes(1e6), logit: 0 })).toBeCloseTo(7.5, 6);
    // They disagree completely: the score says "unsure", not either extreme.
    expect(contentScore({ bayes: bayes(1e6), logit: -1e6 })).toBeCloseTo(5, 6);
    expect(combine({ bayes: bayes(200), logit: 20 }, [], defaultSpamThresholds)).toMatchObject({ status: 'spam', logit: 20 });
  });

  it('when the evidence is thin, then the score is pulled under the unsure band, even if both parts lean spam', () => {
    const bayes = (spamminess: number, clues: number) => ({ probability: 0.5, spamminess, clues: Array.from({ length: clues }, (_, i) => ({ token: `t${i}`, probability: 0.99 })) });
    expect(contentScore({ bayes: bayes(0, 0), logit: 30 })).toBe(3.5);
    const one = combine({ bayes: bayes(1e6, 1), logit: 1e6 }, [], defaultSpamThresholds);
    expect(one.score).toBeCloseTo(3.5 + 6.5 * (1 / 5) ** 2, 2);
    expect(one.status).toBe('ham');
    expect(combine({ bayes: bayes(1e6, 2), logit: 1e6 }, [], defaultSpamThresholds).status).toBe('unsure');
    expect(combine({ bayes: bayes(1e6, 5), logit: 1e6 }, [], defaultSpamThresholds).status).toBe('spam');
    // Soft rules on top of no evidence tag it, and do not quarantine it.
    const soft = [{ rule: 'MISSING_DATE', weight: 0.2, detail: '' }, { rule: 'MISSING_MESSAGE_ID', weight: 0.2, detail: '' }, { rule: 'MISSING_FROM', weight: 0.3, detail: '' }];
    expect(combine({ bayes: bayes(0, 0), logit: 5 }, soft, defaultSpamThresholds)).toMatchObject({ score: 4.2, status: 'unsure' });
  });

  it('when short everyday notes come in, then the shipped model quarantines none of them', async () => {
    // Without the thin-evidence rule three of these were quarantined (1–2 clues, the logistic part leaning spam on the header shape).
    const notes = ['Hi Bob, see you at 3pm. Alice', 'Thanks, got it.', 'Can you send me the invoice for October? Regards, Jan', 'Lunch tomorrow?', 'Your order 4411 has shipped and should arrive on Monday.', 'Here is the link to the document: https://docs.example.com/d/abc123'];
    const subjects = ['Re: invoice', 'Order 4411 shipped', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from Carol', 'hi'];
    const plain = 'From: <carol@unsigned.test>\r\nTo: <bob@customer.test>\r\nDate: Wed, 27 Nov 2024 09:33:20 GMT\r\nMessage-ID: <1732700000.abc@client.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n';
    const statuses = new Set<string>();
    for (const note of notes) {
      for (const subject of subjects) {
        const out = await check.run(Buffer.from(`${plain}Subject: ${subject}\r\n\r\n${note}\r\n`), []);
        statuses.add(out.outcome!.status);
        expect(out.verdict, `${subject} / ${note}`).toBe('deliver');
      }
    }
    expect(statuses.has('spam')).toBe(false);
  });

  it('when a score is compared with the thresholds, then the bands are inclusive at their lower ends', () => {
    expect(statusFor(5.3, defaultSpamThresholds)).toBe('spam');
    expect(statusFor(5.29, defaultSpamThresholds)).toBe('unsure');
    expect(statusFor(4, defaultSpamThresholds)).toBe('unsure');
    expect(statusFor(3.99, defaultSpamThresholds)).toBe('ham');
  });
});
