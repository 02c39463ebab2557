import { MoatError, type Logger } from '@moat/runtime';
import type { MessageStore, PendingSpamFeedback, SpamLabel, SpamLearningRepository, SpamTrainingPlan } from '@moat/store';
import { parseForSpam } from './parse.js';
import { hashTokens } from './tenant-model.js';
import { tokenize } from './tokenize.js';

/**
 * The trainer: moves spam_feedback rows into the tenants' token counts. It runs in the filter
 * (the process that holds the master key and reads bodies) on a timer; each tick is one batch in
 * one transaction (SpamLearningRepository.trainBatch), so replicas share the rows and a crash
 * loses nothing and counts nothing twice.
 */

/** A body's tokens (hashed), or why the message cannot be learned. */
export type BodyTokens = { tokenHashes: string[] } | { untrainable: string };

/**
 * What a batch changes. Per row:
 * - the model already holds this label for the message → `unchanged`;
 * - it holds the other label → `relabelled`: the message's stored tokens move from one class to
 *   the other (no body needed: a relabel works after retention);
 * - it holds nothing → `learned` from the body's tokens, or `untrainable` with the reason.
 * Deltas are summed per (tenant, token) and per tenant, as the store needs them.
 */
export function planTraining(rows: readonly PendingSpamFeedback[], bodies: ReadonlyMap<string, BodyTokens>): SpamTrainingPlan {
  const tokenDeltas = new Map<string, { tenantId: string; tokenHash: string; spam: number; ham: number }>();
  const totalDeltas = new Map<string, { tenantId: string; spam: number; ham: number }>();
  const plan: SpamTrainingPlan = { tokenDeltas: [], totalDeltas: [], learned: [], stamps: [] };
  const add = (tenantId: string, tokenHashes: readonly string[], label: SpamLabel, sign: 1 | -1) => {
    const total = totalDeltas.get(tenantId) ?? { tenantId, spam: 0, ham: 0 };
    total[label] += sign;
    totalDeltas.set(tenantId, total);
    for (const tokenHash of tokenHashes) {
      const key = `${tenantId}/${tokenHash}`;
      const d = tokenDeltas.get(key) ?? { tenantId, tokenHash, spam: 0, ham: 0 };
      d[label] += sign;
      tokenDeltas.set(key, d);
    }
  };
  for (const row of rows) {
    if (row.learned?.label === row.label) {
      plan.stamps.push({ id: row.id, outcome: 'unchanged', detail: null });
      continue;
    }
    if (row.learned) {
      add(row.tenantId, row.learned.tokenHashes, row.learned.label, -1);
      add(row.tenantId, row.learned.tokenHashes, row.label, 1);
      plan.learned.push({ messageId: row.messageId, tenantId: row.tenantId, label: row.label, tokenHashes: row.learned.tokenHashes, feedbackId: row.id });
      plan.stamps.push({ id: row.id, outcome: 'relabelled', detail: `${row.learned.label} → ${row.label}` });
      continue;
    }
    const body = bodies.get(row.id);
    if (!body || 'untrainable' in body) {
      plan.stamps.push({ id: row.id, outcome: 'untrainable', detail: body ? body.untrainable : 'the body was not read' });
      continue;
    }
    add(row.tenantId, body.tokenHashes, row.label, 1);
    plan.learned.push({ messageId: row.messageId, tenantId: row.tenantId, label: row.label, tokenHashes: body.tokenHashes, feedbackId: row.id });
    plan.stamps.push({ id: row.id, outcome: 'learned', detail: `${body.tokenHashes.length} tokens` });
  }
  plan.tokenDeltas = [...tokenDeltas.values()];
  plan.totalDeltas = [...totalDeltas.values()];
  return plan;
}

/**
 * A message's tokens as the classifier sees them (same parser, same tokenizer), hashed. A body the
 * store no longer has, or cannot open, is untrainable for good; a store that cannot be reached
 * throws (the batch rolls back and is tried again on the next tick).
 */
export async function bodyTokens(store: Pick<MessageStore, 'get'>, row: PendingSpamFeedback): Promise<BodyTokens> {
  let raw: Buffer;
  try {
    raw = await store.get({ messageId: row.messageId, receivedAt: row.storeReceivedAt });
  } catch (err) {
    if (err instanceof MoatError && err.code === 'NOT_FOUND') return { untrainable: 'the body is no longer in the message store (retention or deletion)' };
    if (err instanceof MoatError && err.code === 'DECRYPT_FAILED') return { untrainable: `the body cannot be opened: ${err.message}` };
    throw err;
  }
  try {
    return { tokenHashes: [...hashTokens(tokenize(await parseForSpam(raw))).keys()] };
  } catch (err) {
    return { untrainable: `the body could not be tokenized: ${(err as Error).message}` };
  }
}

export interface SpamTrainerOptions {
  repo: Pick<SpamLearningRepository, 'trainBatch'>;
  store: Pick<MessageStore, 'get'>;
  /** Pause between batches when there is nothing (more) to train. */
  intervalMs: number;
  batchSize: number;
  log: Logger;
}

export class SpamTrainer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: SpamTrainerOptions) {}

  /** One batch; how many feedback rows it trained. */
  async runOnce(): Promise<number> {
    return this.opts.repo.trainBatch(this.opts.batchSize, async (rows) => {
      const bodies = new Map<string, BodyTokens>();
      // Only a first label needs the body; one at a time, so a batch of large messages stays bounded in memory.
      for (const row of rows) if (!row.learned) bodies.set(row.id, await bodyTokens(this.opts.store, row));
      const plan = planTraining(rows, bodies);
      const outcomes = plan.stamps.reduce<Record<string, number>>((acc, s) => ({ ...acc, [s.outcome]: (acc[s.outcome] ?? 0) + 1 }), {});
      this.opts.log.info({ rows: rows.length, ...outcomes, tenants: plan.totalDeltas.length }, 'spam feedback trained');
      for (const s of plan.stamps) if (s.outcome === 'untrainable') this.opts.log.warn({ feedbackId: s.id, reason: s.detail }, 'spam feedback untrainable');
      return plan;
    });
  }

  start(): void {
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick().finally(() => (this.running = null));
    }, delayMs);
    // The trainer alone never keeps the process alive.
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let trained = 0;
    try {
      trained = await this.runOnce();
    } catch (err) {
      // Known transient trouble (database, store): the batch rolled back; the next tick retries it.
      this.opts.log.warn({ err: (err as Error).message }, 'spam training batch failed; retrying on the next tick');
    }
    // A full batch: more may be waiting, go on at once.
    this.schedule(trained >= this.opts.batchSize ? 0 : this.opts.intervalMs);
  }

  /** Stops scheduling and waits for the batch in flight (it commits or rolls back as a whole). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
