import { emptyCounts, learn, prune, score as bayesScore, type BayesParams, type TokenCounts } from './bayes.js';
import { combine, type SpamStatus, type SpamThresholds } from './classify.js';
import { defaultLogisticParams, logisticScore, trainLogistic, type LogisticModel, type LogisticParams } from './logistic.js';
import { parseForSpam } from './parse.js';
import { evaluateRules, type RuleHit } from './rules.js';
import { tokenize } from './tokenize.js';

/**
 * Training, cross-validation and the accuracy figures, shared by the train and eval commands.
 * "Caught" means quarantined (status spam); an unsure message is delivered, so it counts as
 * missed spam, or as ham that was not quarantined.
 */

export interface Features {
  isSpam: boolean;
  tokens: string[];
  /** Content rules only: the commands have no authentication results. */
  rules: RuleHit[];
}

export async function featuresOf(raw: Buffer, isSpam: boolean): Promise<Features> {
  const input = await parseForSpam(raw);
  return { isSpam, tokens: [...tokenize(input)], rules: evaluateRules({ input, raw, auth: [] }) };
}

export interface TrainedModel {
  counts: TokenCounts;
  logistic: LogisticModel;
}

/**
 * Both parts over the messages, in the order given: the Bayesian counts, pruned as the shipped
 * model is (keeping every token the logistic part weighs), and the logistic weights.
 */
export function trainModel(items: readonly Features[], params: BayesParams, minCount: number, logisticParams: LogisticParams = defaultLogisticParams): TrainedModel {
  const counts = emptyCounts();
  for (const item of items) learn(counts, item.tokens, item.isSpam);
  const logistic = trainLogistic(items, logisticParams);
  return { counts: prune(counts, minCount, params, new Set(logistic.weights.keys())), logistic };
}

export interface Scored {
  isSpam: boolean;
  status: SpamStatus;
  /** Status from the statistical parts alone (no rules), at the same thresholds. */
  contentStatus: SpamStatus;
  score: number;
  probability: number;
}

/**
 * k-fold cross-validation: message i is in fold i mod k (the list is sorted, spam then ham, so
 * every fold gets its share of both). Each fold is scored by a model trained on the others.
 */
export function crossValidate(items: readonly Features[], k: number, params: BayesParams, minCount: number, thresholds: SpamThresholds): Scored[] {
  if (!Number.isInteger(k) || k < 2) throw new Error(`cross-validation needs at least 2 folds, got ${k}`);
  const out: Scored[] = [];
  for (let fold = 0; fold < k; fold++) {
    const model = trainModel(items.filter((_, i) => i % k !== fold), params, minCount);
    items.forEach((item, i) => {
      if (i % k === fold) out.push(scoreFeatures(model, params, item, thresholds));
    });
  }
  return out;
}

export function scoreFeatures(model: TrainedModel, params: BayesParams, item: Features, thresholds: SpamThresholds): Scored {
  const evidence = { bayes: bayesScore(model.counts, item.tokens, params), logit: logisticScore(model.logistic, item.tokens) };
  const outcome = combine(evidence, item.rules, thresholds);
  const contentOnly = combine(evidence, [], thresholds);
  return { isSpam: item.isSpam, status: outcome.status, contentStatus: contentOnly.status, score: outcome.score, probability: evidence.bayes.probability };
}

export interface Accuracy {
  spam: number;
  ham: number;
  /** Spam quarantined / spam. */
  recall: number;
  /** Ham quarantined / ham. */
  falsePositiveRate: number;
  /** (spam quarantined + ham not quarantined) / all. */
  accuracy: number;
  /** Rows: actual spam, actual ham; columns: quarantined (spam), unsure (delivered tagged), ham (delivered). */
  confusion: { spam: Record<SpamStatus, number>; ham: Record<SpamStatus, number> };
}

export function accuracyOf(scored: readonly Scored[], pick: (s: Scored) => SpamStatus = (s) => s.status): Accuracy {
  const confusion = { spam: { spam: 0, unsure: 0, ham: 0 }, ham: { spam: 0, unsure: 0, ham: 0 } };
  for (const s of scored) confusion[s.isSpam ? 'spam' : 'ham'][pick(s)]++;
  const spam = confusion.spam.spam + confusion.spam.unsure + confusion.spam.ham;
  const ham = confusion.ham.spam + confusion.ham.unsure + confusion.ham.ham;
  const correct = confusion.spam.spam + confusion.ham.unsure + confusion.ham.ham;
  return {
    spam,
    ham,
    recall: spam === 0 ? 0 : confusion.spam.spam / spam,
    falsePositiveRate: ham === 0 ? 0 : confusion.ham.spam / ham,
    accuracy: spam + ham === 0 ? 0 : correct / (spam + ham),
    confusion,
  };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}

export function formatAccuracy(title: string, a: Accuracy): string {
  const row = (name: string, r: Record<SpamStatus, number>) => `  ${name.padEnd(12)}${String(r.spam).padStart(12)}${String(r.unsure).padStart(10)}${String(r.ham).padStart(10)}`;
  return [
    `${title}`,
    `  spam recall         ${pct(a.recall)} (${a.confusion.spam.spam} of ${a.spam} quarantined)`,
    `  ham false positives ${pct(a.falsePositiveRate)} (${a.confusion.ham.spam} of ${a.ham} quarantined)`,
    `  accuracy            ${pct(a.accuracy)}`,
    `  confusion matrix    quarantined    unsure       ham`,
    row('actual spam', a.confusion.spam),
    row('actual ham', a.confusion.ham),
  ].join('\n');
}
