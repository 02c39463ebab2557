/**
 * A logistic regression over the same tokens as the Bayesian part: the second opinion of the
 * built-in classifier (classify.ts combines the two).
 *
 * Why a second model. Chi-square Bayes judges each token on its own; it cannot learn that a word
 * common to spam is harmless next to the words of a known newsletter. A discriminative model
 * weighs the tokens against each other, and its mistakes are different ones: on the SpamAssassin
 * train split the two together miss about half the spam either misses alone, at the same false
 * positives (README, "Spam filtering").
 *
 * Features are the message's tokens, present or not, scaled by 1/√(number of known tokens) so a
 * long message does not shout; the output is log-odds (positive leans spam). Training is plain
 * AdaGrad over shuffled messages with a fixed seed and ham errors weighted `hamWeight` times: the
 * same corpus gives the same weights, bit for bit, and the false-positive side is the one tuned.
 */

export interface LogisticParams {
  /** A token must occur in at least this many training messages to get a weight. */
  minCount: number;
  epochs: number;
  /** AdaGrad's base step. */
  learningRate: number;
  /** L2 penalty per step. */
  l2: number;
  /** A ham message counts this many times: false positives cost more than misses. */
  hamWeight: number;
  /** Seed of the shuffle. */
  seed: number;
}

export const defaultLogisticParams: LogisticParams = { minCount: 2, epochs: 10, learningRate: 1, l2: 1e-5, hamWeight: 3, seed: 1 };

export interface LogisticModel {
  bias: number;
  /** token → weight; tokens without one add nothing. */
  weights: Map<string, number>;
}

export function emptyLogistic(): LogisticModel {
  return { bias: 0, weights: new Map() };
}

/** Weights are kept to four decimals: the model file stays small and the cross-validation scores exactly what ships. */
function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** The model's log-odds for a message's tokens (0 for an empty model). */
export function logisticScore(model: LogisticModel, tokens: Iterable<string>): number {
  let sum = 0;
  let known = 0;
  for (const token of tokens) {
    const w = model.weights.get(token);
    if (w === undefined) continue;
    sum += w;
    known++;
  }
  return model.bias + sum / Math.sqrt(Math.max(1, known));
}

/** A deterministic generator (Park–Miller): the shuffle must not depend on Math.random. */
function generator(seed: number): () => number {
  let state = seed % 2147483647 || 1;
  return () => {
    state = (state * 48271) % 2147483647;
    return state / 2147483647;
  };
}

export function trainLogistic(items: ReadonlyArray<{ tokens: readonly string[]; isSpam: boolean }>, params: LogisticParams = defaultLogisticParams): LogisticModel {
  const seen = new Map<string, number>();
  for (const item of items) for (const t of new Set(item.tokens)) seen.set(t, (seen.get(t) ?? 0) + 1);
  const index = new Map<string, number>();
  for (const [token, n] of seen) if (n >= params.minCount) index.set(token, index.size);

  const encoded = items.map((item) => ({
    features: [...new Set(item.tokens)].map((t) => index.get(t)).filter((j): j is number => j !== undefined),
    target: item.isSpam ? 1 : 0,
  }));
  const w = new Float64Array(index.size);
  const squares = new Float64Array(index.size).fill(1e-8);
  let bias = 0;
  let biasSquares = 1e-8;
  const random = generator(params.seed);
  const order = encoded.map((_, i) => i);
  for (let epoch = 0; epoch < params.epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) {
      const { features, target } = encoded[i]!;
      const scale = 1 / Math.sqrt(Math.max(1, features.length));
      let z = bias;
      for (const j of features) z += w[j]! * scale;
      const error = (1 / (1 + Math.exp(-z)) - target) * (target === 0 ? params.hamWeight : 1);
      biasSquares += error * error;
      bias -= (params.learningRate * error) / Math.sqrt(biasSquares);
      for (const j of features) {
        const g = error * scale + params.l2 * w[j]!;
        squares[j]! += g * g;
        w[j]! -= (params.learningRate * g) / Math.sqrt(squares[j]!);
      }
    }
  }
  const weights = new Map<string, number>();
  // Every token keeps its weight, zero included: the scale at scoring counts the same tokens as in training.
  for (const [token, j] of index) weights.set(token, round(w[j]!));
  return { bias: round(bias), weights };
}
