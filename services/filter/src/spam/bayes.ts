/**
 * Bayesian spam probability with Gary Robinson's per-token estimate and Fisher's chi-square
 * combining, as SpamBayes does it (spambayes/classifier.py, chi2_spamprob). Against plain naive
 * Bayes it has two properties this filter needs:
 * - the result is not pushed to 0 or 1 by a long message: it says how sure the evidence is,
 *   and mixed evidence lands near 0.5, which is the "unsure" band, not a false positive;
 * - a token seen a few times is pulled towards 0.5 (the Robinson prior), so one rare word
 *   cannot decide a message.
 */

export interface BayesParams {
  /** Strength of the prior for a token (Robinson's s). */
  unknownWordStrength: number;
  /** The prior itself (Robinson's x). */
  unknownWordProb: number;
  /** Tokens whose probability is closer than this to 0.5 are ignored. */
  minimumProbStrength: number;
  /** At most this many of the most extreme tokens are combined. */
  maxDiscriminators: number;
}

export const defaultBayesParams: BayesParams = {
  unknownWordStrength: 0.45,
  unknownWordProb: 0.5,
  minimumProbStrength: 0.1,
  maxDiscriminators: 150,
};

/** Token counts: in how many spam and how many ham messages each token occurred. */
export interface TokenCounts {
  nSpam: number;
  nHam: number;
  /** token → spam count × 2^26 + ham count: one number per token instead of an object (a third of the heap). */
  tokens: Map<string, number>;
}

const hamBits = 2 ** 26;

export function pack(spam: number, ham: number): number {
  return spam * hamBits + ham;
}

export function unpack(value: number): { spam: number; ham: number } {
  const ham = value % hamBits;
  return { spam: (value - ham) / hamBits, ham };
}

export function emptyCounts(): TokenCounts {
  return { nSpam: 0, nHam: 0, tokens: new Map() };
}

/** Adds one message's tokens to the counts. */
export function learn(counts: TokenCounts, tokens: Iterable<string>, isSpam: boolean): void {
  if (isSpam) counts.nSpam++;
  else counts.nHam++;
  const add = isSpam ? hamBits : 1;
  for (const t of tokens) counts.tokens.set(t, (counts.tokens.get(t) ?? 0) + add);
}

/**
 * Robinson's f(w) from counts: the token's spam probability (its share of spam messages against
 * its share of ham messages), shrunk towards the prior `prior` with strength `strength` by how
 * rarely it was seen.
 */
export function robinson(spam: number, ham: number, nSpam: number, nHam: number, strength: number, prior: number): number {
  const spamRatio = spam / Math.max(nSpam, 1);
  const hamRatio = ham / Math.max(nHam, 1);
  const p = spamRatio + hamRatio === 0 ? prior : spamRatio / (spamRatio + hamRatio);
  const n = spam + ham;
  return (strength * prior + n * p) / (strength + n);
}

/** Robinson's f(w) for a packed count of the model. */
export function tokenProbability(counts: TokenCounts, value: number, params: BayesParams): number {
  const { spam, ham } = unpack(value);
  return robinson(spam, ham, counts.nSpam, counts.nHam, params.unknownWordStrength, params.unknownWordProb);
}

/**
 * The chi-square survival function for an even number of degrees of freedom: the probability
 * that chi-square with `v` degrees of freedom exceeds `x2` (closed form for even v).
 */
export function chi2Q(x2: number, v: number): number {
  const m = x2 / 2;
  let term = Math.exp(-m);
  let sum = term;
  for (let i = 1; i < v / 2; i++) {
    term *= m / i;
    sum += term;
  }
  return Math.min(sum, 1);
}

/**
 * ln of chi2Q, exact where chi2Q itself underflows to 0 (a long message's clues give statistics in
 * the thousands): the same series, summed as logarithms.
 */
export function lnChi2Q(x2: number, v: number): number {
  const m = x2 / 2;
  let term = -m;
  let max = term;
  const terms = [term];
  for (let i = 1; i < v / 2; i++) {
    term += Math.log(m / i);
    terms.push(term);
    if (term > max) max = term;
  }
  let sum = 0;
  for (const t of terms) sum += Math.exp(t - max);
  return Math.min(0, max + Math.log(sum));
}

export interface BayesScore {
  /** 0 = surely ham, 1 = surely spam, about 0.5 = the evidence is mixed or missing. */
  probability: number;
  /**
   * How much more extreme the spam-leaning clues are than the ham-leaning ones: ln Q(ham side) −
   * ln Q(spam side), where Q is the chance that clues that extreme arise at random. Positive leans
   * spam. Unlike `probability` it does not saturate: a long newsletter with 150 clues each way has
   * S = H = 1 and probability exactly 0.5, but one side is still far more extreme than the other,
   * and this says which and by how much. 0 with no clues.
   */
  spamminess: number;
  /** The tokens that decided, most extreme first (for the reasons shown to people). */
  clues: Array<{ token: string; probability: number }>;
}

export function score(counts: TokenCounts, tokens: Iterable<string>, params: BayesParams = defaultBayesParams): BayesScore {
  const probabilities: Array<{ token: string; probability: number }> = [];
  for (const token of tokens) {
    const value = counts.tokens.get(token);
    if (value !== undefined) probabilities.push({ token, probability: tokenProbability(counts, value, params) });
  }
  return combineProbabilities(probabilities, params);
}

/**
 * Fisher's chi-square combining of per-token probabilities: the tokens far enough from 0.5, at
 * most maxDiscriminators of the most extreme, into one probability (see the top of this file).
 */
export function combineProbabilities(probabilities: Iterable<{ token: string; probability: number }>, params: BayesParams): BayesScore {
  const extreme: Array<{ token: string; probability: number; distance: number }> = [];
  for (const { token, probability } of probabilities) {
    const distance = Math.abs(probability - 0.5);
    if (distance >= params.minimumProbStrength) extreme.push({ token, probability, distance });
  }
  // Ties broken by token so the score never depends on the order tokens came in.
  extreme.sort((a, b) => b.distance - a.distance || (a.token < b.token ? -1 : a.token > b.token ? 1 : 0));
  const used = extreme.slice(0, params.maxDiscriminators);
  if (used.length === 0) return { probability: 0.5, spamminess: 0, clues: [] };
  let lnSpam = 0;
  let lnHam = 0;
  for (const clue of used) {
    lnSpam += Math.log(1 - clue.probability);
    lnHam += Math.log(clue.probability);
  }
  const n = used.length;
  // S near 1: the spam-leaning tokens are more extreme than chance; H likewise for ham.
  const lnQSpam = lnChi2Q(-2 * lnSpam, 2 * n);
  const lnQHam = lnChi2Q(-2 * lnHam, 2 * n);
  const S = 1 - Math.exp(lnQSpam);
  const H = 1 - Math.exp(lnQHam);
  return { probability: (S - H + 1) / 2, spamminess: lnQHam - lnQSpam, clues: used.map(({ token, probability }) => ({ token, probability })) };
}

/**
 * Drops the tokens that cannot matter: seen in fewer than `minCount` messages, or so evenly
 * spread that their probability stays inside the ignored band around 0.5. On the SpamAssassin
 * train split this keeps the model at a fraction of the raw vocabulary at no cost in accuracy
 * (the cross-validation figures in the README are measured with the pruning on). Tokens in `keep`
 * stay whatever their counts (the logistic part's vocabulary: the model file stores a weight
 * next to a token's counts).
 */
export function prune(counts: TokenCounts, minCount: number, params: BayesParams = defaultBayesParams, keep: ReadonlySet<string> = new Set()): TokenCounts {
  const tokens = new Map<string, number>();
  for (const [token, value] of counts.tokens) {
    if (keep.has(token)) {
      tokens.set(token, value);
      continue;
    }
    const { spam, ham } = unpack(value);
    if (spam + ham < minCount) continue;
    if (Math.abs(tokenProbability(counts, value, params) - 0.5) < params.minimumProbStrength) continue;
    tokens.set(token, value);
  }
  return { nSpam: counts.nSpam, nHam: counts.nHam, tokens };
}
