#!/usr/bin/env node
// npm run filter:train -- [CORPUS_DIR] [--out FILE] [--cv K] [--min-count N]
//
// Builds the spam model from CORPUS_DIR/spam and CORPUS_DIR/ham (default: the SpamAssassin
// train split at ../shared/corpus/spamassassin/train, relative to the working directory) and
// writes it to the shipped default model unless --out says otherwise. Deterministic: files are
// read in name order and the model is written with sorted keys, so the same corpus gives the
// same bytes. --cv K also reports K-fold cross-validation at the default thresholds.
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { defaultSpamThresholds } from './classify.js';
import { labelledFiles, readMessage } from './corpus.js';
import { accuracyOf, crossValidate, featuresOf, formatAccuracy, trainModel, type Features } from './evaluate.js';
import { defaultModelPath, serializeModel, tunedBayesParams } from './model.js';

/** Tokens seen once are kept: the cross-validation is better with them, and the pruned model stays small. */
const defaultMinCount = 1;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string' }, cv: { type: 'string' }, 'min-count': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write('usage: npm run filter:train -- [CORPUS_DIR] [--out FILE] [--cv K] [--min-count N]\n');
    return 0;
  }
  const corpus = resolve(positionals[0] ?? '../shared/corpus/spamassassin/train');
  const out = resolve(values.out ?? defaultModelPath);
  const minCount = values['min-count'] === undefined ? defaultMinCount : Number(values['min-count']);
  if (!Number.isInteger(minCount) || minCount < 1) throw new Error(`--min-count must be a whole number ≥ 1, got ${values['min-count']}`);

  const started = performance.now();
  const files = await labelledFiles(join(corpus, 'spam'), join(corpus, 'ham'));
  const items: Features[] = [];
  for (const f of files) items.push(await featuresOf(await readMessage(f.path), f.isSpam));
  const nSpam = items.filter((i) => i.isSpam).length;
  if (nSpam === 0 || nSpam === items.length) throw new Error(`${corpus} needs messages in both spam/ and ham/ (found ${nSpam} spam, ${items.length - nSpam} ham)`);

  const { counts, logistic } = trainModel(items, tunedBayesParams, minCount);
  await writeFile(out, serializeModel(counts, tunedBayesParams, logistic));
  process.stdout.write(`trained on ${nSpam} spam and ${items.length - nSpam} ham from ${corpus}\n`);
  process.stdout.write(`wrote ${out}: ${counts.tokens.size} tokens (min count ${minCount}), ${logistic.weights.size} logistic weights, in ${Math.round(performance.now() - started)} ms\n`);

  if (values.cv !== undefined) {
    const k = Number(values.cv);
    const scored = crossValidate(items, k, tunedBayesParams, minCount, defaultSpamThresholds);
    const t = defaultSpamThresholds;
    process.stdout.write(`\n${k}-fold cross-validation at the default thresholds (quarantine ≥ ${t.quarantine}, unsure ≥ ${t.unsure}):\n`);
    process.stdout.write(`${formatAccuracy('built-in classifier (Bayes + logistic + content rules)', accuracyOf(scored))}\n`);
    process.stdout.write(`${formatAccuracy('Bayes + logistic alone (no rules)', accuracyOf(scored, (s) => s.contentStatus))}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`filter:train: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
