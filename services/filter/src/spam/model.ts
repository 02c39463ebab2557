import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultBayesParams, pack, unpack, type BayesParams, type TokenCounts } from './bayes.js';
import { defaultLogisticParams, type LogisticModel, type LogisticParams } from './logistic.js';

/**
 * The classifier's model as a file: token counts for the Bayesian part, the logistic part's
 * weights, and the parameters both were trained with, so a model always scores the way it was
 * measured. JSON, keys sorted, one token per line (`"token":[spam,ham]`, or
 * `"token":[spam,ham,weight]` when the logistic part has a weight for it): the same corpus and
 * command give the same bytes (the committed default model can be re-made and compared), and a
 * diff between two models is readable.
 */

/** 2 added the logistic weights; a /1 file (counts only) is refused with a request to retrain. */
export const modelFormat = 'moat-spam/2';
/** Bumped whenever the tokenizer changes what it emits: a model from another version would score nonsense. */
export const tokenizerVersion = 1;

/** The default model, shipped in the package (services/filter/model/), found from src/ and dist/ alike. */
export const defaultModelPath = fileURLToPath(new URL('../../model/spam-bayes.json', import.meta.url));

export interface SpamModel {
  counts: TokenCounts;
  params: BayesParams;
  logistic: LogisticModel;
  /** Where it came from, for logs and the eval report. */
  source: string;
}

/**
 * Parameters the default model uses. Tuned by 10-fold cross-validation on the SpamAssassin
 * train split for the fewest false positives (README, "Spam filtering"): a token must be
 * strongly one-sided (|f − 0.5| ≥ 0.4) to count, and the prior is weak (s = 0.2) so a token
 * seen once in one class still reaches that strength.
 */
export const tunedBayesParams: BayesParams = { ...defaultBayesParams, unknownWordStrength: 0.2, minimumProbStrength: 0.4 };

interface ModelFile {
  format: string;
  tokenizer: number;
  params: BayesParams;
  logistic: { params: LogisticParams; bias: number };
  nSpam: number;
  nHam: number;
  /** token → [spam count, ham count] or [spam count, ham count, logistic weight] */
  tokens: Record<string, [number, number] | [number, number, number]>;
}

export function serializeModel(counts: TokenCounts, params: BayesParams, logistic: LogisticModel, logisticParams: LogisticParams = defaultLogisticParams): string {
  const header = { format: modelFormat, tokenizer: tokenizerVersion, params, logistic: { params: logisticParams, bias: logistic.bias }, nSpam: counts.nSpam, nHam: counts.nHam };
  const missing = [...logistic.weights.keys()].filter((t) => !counts.tokens.has(t));
  if (missing.length > 0) throw new Error(`the logistic weights name ${missing.length} tokens without counts (${missing[0]}): train both parts on the same messages`);
  const lines = [...counts.tokens.keys()]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((token) => {
      const { spam, ham } = unpack(counts.tokens.get(token)!);
      const weight = logistic.weights.get(token);
      return `${JSON.stringify(token)}:[${spam},${ham}${weight === undefined ? '' : `,${weight}`}]`;
    });
  const head = JSON.stringify(header);
  return `${head.slice(0, -1)},"tokens":{\n${lines.join(',\n')}\n}}\n`;
}

const tokensOpening = ',"tokens":{\n';

type ModelHeader = Omit<ModelFile, 'tokens'>;

/**
 * The file as serializeModel writes it (a header, then one `"token":[spam,ham]` per line), read
 * line by line into `tokens`: JSON.parse of the whole file would first build a 59,000-key object,
 * a transient heap (≈30 MiB) that stays in the filter's RSS for good. Null when the text is not
 * in that layout (a hand-edited model): the caller reads it as plain JSON.
 */
function readSerializedModel(text: string, tokens: Map<string, number>, weights: Map<string, number>): ModelHeader | null {
  const at = text.indexOf(tokensOpening);
  const close = text.lastIndexOf('\n}}');
  if (at <= 0 || close < at || text.slice(close).trim() !== '}}') return null;
  try {
    const header = JSON.parse(`${text.slice(0, at)}}`) as ModelHeader;
    const body = text.slice(at + tokensOpening.length, close);
    for (const line of body.length === 0 ? [] : body.split('\n')) {
      const entry = line.endsWith(',') ? line.slice(0, -1) : line;
      const split = entry.lastIndexOf(':[');
      const counts = split < 0 || !entry.endsWith(']') ? [] : entry.slice(split + 2, -1).split(',');
      const token = JSON.parse(entry.slice(0, split)) as string;
      addToken(tokens, weights, token, counts.map(Number));
    }
    return header;
  } catch {
    tokens.clear();
    weights.clear();
    return null;
  }
}

/** One token's entry, checked: two whole counts and an optional finite weight. */
function addToken(tokens: Map<string, number>, weights: Map<string, number>, token: string, entry: unknown): void {
  const values = Array.isArray(entry) ? (entry as unknown[]) : [];
  const [spam, ham, weight] = values;
  const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if ((values.length !== 2 && values.length !== 3) || !isCount(spam) || !isCount(ham)) throw new Error(`token ${JSON.stringify(token)} has no valid counts`);
  tokens.set(token, pack(spam, ham));
  if (values.length === 3) {
    if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new Error(`token ${JSON.stringify(token)} has no valid weight`);
    weights.set(token, weight);
  }
}

export function parseModel(text: string, source: string): SpamModel {
  const tokens = new Map<string, number>();
  const weights = new Map<string, number>();
  let file: ModelHeader | null = readSerializedModel(text, tokens, weights);
  if (!file) {
    let whole: ModelFile;
    try {
      whole = JSON.parse(text) as ModelFile;
    } catch (err) {
      throw new Error(`spam model ${source} is not JSON: ${(err as Error).message}`);
    }
    try {
      for (const [token, entry] of Object.entries(whole.tokens ?? {})) addToken(tokens, weights, token, entry);
    } catch (err) {
      throw new Error(`spam model ${source}: ${(err as Error).message}`);
    }
    file = whole;
  }
  if (file.format !== modelFormat) throw new Error(`spam model ${source} has format ${String(file.format)}, this filter reads ${modelFormat}: retrain it (npm run filter:train)`);
  const bias = file.logistic?.bias;
  if (typeof bias !== 'number' || !Number.isFinite(bias)) throw new Error(`spam model ${source} has no logistic bias`);
  if (file.tokenizer !== tokenizerVersion) {
    throw new Error(`spam model ${source} was trained with tokenizer ${String(file.tokenizer)}, this filter has ${tokenizerVersion}: retrain it (npm run filter:train)`);
  }
  if (!Number.isInteger(file.nSpam) || !Number.isInteger(file.nHam) || file.nSpam < 1 || file.nHam < 1) {
    throw new Error(`spam model ${source} needs at least one spam and one ham message (nSpam ${file.nSpam}, nHam ${file.nHam})`);
  }
  return { counts: { nSpam: file.nSpam, nHam: file.nHam, tokens }, params: { ...defaultBayesParams, ...file.params }, logistic: { bias, weights }, source };
}

/** Reads a model once, at start: a missing or broken file stops the service before it takes mail. */
export function loadModel(path: string = defaultModelPath): SpamModel {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the spam model ${path}: ${(err as Error).message}`);
  }
  return parseModel(text, path);
}
