#!/usr/bin/env node
// npm run filter:eval -- --spam DIR --ham DIR [--model FILE] [--json]
//
// Scores every file in the directories with the default model (or FILE) at the default
// thresholds, as the filter would with no authentication results, and reports spam recall,
// the ham false-positive rate, accuracy and the confusion matrix, for the built-in classifier
// (Bayes + logistic + content rules) and for the statistical parts alone (no rules), with the CPU
// time per message and the process RSS.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { contentScore, defaultSpamThresholds, scoreParsed, statusFor } from './classify.js';
import { score as bayesScore } from './bayes.js';
import { logisticScore } from './logistic.js';
import { tokenize } from './tokenize.js';
import { messageFiles, readMessage } from './corpus.js';
import { accuracyOf, formatAccuracy, type Scored } from './evaluate.js';
import { loadModel } from './model.js';
import { parseForSpam } from './parse.js';

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { spam: { type: 'string' }, ham: { type: 'string' }, model: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || (values.spam === undefined && values.ham === undefined)) {
    process.stderr.write('usage: npm run filter:eval -- --spam DIR --ham DIR [--model FILE] [--json]\n');
    return values.help ? 0 : 64;
  }
  const model = values.model === undefined ? loadModel() : loadModel(resolve(values.model));
  const thresholds = defaultSpamThresholds;
  const labelled = [
    ...(values.spam === undefined ? [] : (await messageFiles(resolve(values.spam))).map((path) => ({ path, isSpam: true }))),
    ...(values.ham === undefined ? [] : (await messageFiles(resolve(values.ham))).map((path) => ({ path, isSpam: false }))),
  ];

  const scored: Scored[] = [];
  let cpuMicros = 0;
  for (const { path, isSpam } of labelled) {
    const raw = await readMessage(path);
    // CPU of parse + tokenize + score + rules only: what the filter spends per message.
    const before = process.cpuUsage();
    const input = await parseForSpam(raw);
    const outcome = scoreParsed(model, input, raw, [], thresholds);
    const used = process.cpuUsage(before);
    cpuMicros += used.user + used.system;
    // The statistical parts again, outside the timed section, for the "no rules" figures.
    const tokens = tokenize(input);
    const content = contentScore({ bayes: bayesScore(model.counts, tokens, model.params), logit: logisticScore(model.logistic, tokens) });
    scored.push({ isSpam, status: outcome.status, contentStatus: statusFor(Math.round(content * 100) / 100, thresholds), score: outcome.score, probability: outcome.probability });
  }
  const builtIn = accuracyOf(scored);
  const contentAlone = accuracyOf(scored, (s) => s.contentStatus);
  const cpuMsPerMessage = scored.length === 0 ? 0 : cpuMicros / 1000 / scored.length;
  const rssMiB = process.memoryUsage().rss / 1024 / 1024;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ model: model.source, thresholds, builtIn, contentAlone, cpuMsPerMessage, rssMiB }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`model ${model.source} (${model.counts.tokens.size} tokens, ${model.logistic.weights.size} logistic weights; trained on ${model.counts.nSpam} spam, ${model.counts.nHam} ham)\n`);
  process.stdout.write(`thresholds: quarantine ≥ ${thresholds.quarantine}, unsure ≥ ${thresholds.unsure} (score = 5 + 2.5 × (Bayes + logistic, each squashed to ±1) + rule weights)\n\n`);
  process.stdout.write(`${formatAccuracy('built-in classifier (Bayes + logistic + content rules)', builtIn)}\n\n`);
  process.stdout.write(`${formatAccuracy('Bayes + logistic alone (no rules)', contentAlone)}\n\n`);
  process.stdout.write(`CPU ${cpuMsPerMessage.toFixed(3)} ms/message (parse, tokenize, score); RSS ${rssMiB.toFixed(0)} MiB\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`filter:eval: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
