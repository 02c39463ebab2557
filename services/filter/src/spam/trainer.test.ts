import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MoatError } from '@moat/runtime';
import type { PendingSpamFeedback } from '@moat/store';
import { borderlineMessage } from '@moat/testkit';
import { bodyTokens, planTraining, type BodyTokens } from './trainer.js';
import { hashTokens } from './tenant-model.js';
import { parseForSpam } from './parse.js';
import { tokenize } from './tokenize.js';

const row = (over: Partial<PendingSpamFeedback> = {}): PendingSpamFeedback => ({
  id: String(Math.floor(Math.random() * 1e9)),
  tenantId: 'aaaaaaaa-0000-4000-8000-000000000001',
  messageId: randomUUID(),
  storeReceivedAt: new Date().toISOString(),
  label: 'spam',
  learned: null,
  ...over,
});

describe('planTraining', () => {
  it('when two messages of one tenant are learned as spam, then shared tokens add up and the totals count two spam', () => {
    const a = row();
    const b = row();
    const bodies = new Map<string, BodyTokens>([
      [a.id, { tokenHashes: ['1', '2'] }],
      [b.id, { tokenHashes: ['2', '3'] }],
    ]);
    const plan = planTraining([a, b], bodies);
    expect(plan.tokenDeltas).toEqual(
      expect.arrayContaining([
        { tenantId: a.tenantId, tokenHash: '1', spam: 1, ham: 0 },
        { tenantId: a.tenantId, tokenHash: '2', spam: 2, ham: 0 },
        { tenantId: a.tenantId, tokenHash: '3', spam: 1, ham: 0 },
      ]),
    );
    expect(plan.tokenDeltas).toHaveLength(3);
    expect(plan.totalDeltas).toEqual([{ tenantId: a.tenantId, spam: 2, ham: 0 }]);
    expect(plan.learned.map((l) => [l.messageId, l.label, l.tokenHashes])).toEqual([
      [a.messageId, 'spam', ['1', '2']],
      [b.messageId, 'spam', ['2', '3']],
    ]);
    expect(plan.stamps.map((s) => s.outcome)).toEqual(['learned', 'learned']);
  });

  it('when a learned spam is relabelled ham, then its tokens move from spam to ham without reading the body, and nothing is counted twice', () => {
    const r = row({ label: 'ham', learned: { label: 'spam', tokenHashes: ['7', '8'] } });
    const plan = planTraining([r], new Map());
    expect(plan.tokenDeltas).toEqual([
      { tenantId: r.tenantId, tokenHash: '7', spam: -1, ham: 1 },
      { tenantId: r.tenantId, tokenHash: '8', spam: -1, ham: 1 },
    ]);
    expect(plan.totalDeltas).toEqual([{ tenantId: r.tenantId, spam: -1, ham: 1 }]);
    expect(plan.learned).toEqual([expect.objectContaining({ messageId: r.messageId, label: 'ham', tokenHashes: ['7', '8'], feedbackId: r.id })]);
    expect(plan.stamps).toEqual([{ id: r.id, outcome: 'relabelled', detail: 'spam → ham' }]);
  });

  it('when the model already holds the label, then nothing changes and the row is stamped unchanged', () => {
    const r = row({ learned: { label: 'spam', tokenHashes: ['7'] } });
    expect(planTraining([r], new Map())).toEqual({ tokenDeltas: [], totalDeltas: [], learned: [], stamps: [{ id: r.id, outcome: 'unchanged', detail: null }] });
  });

  it('when the body is gone, then the row is untrainable with the reason and counts nothing', () => {
    const r = row();
    const plan = planTraining([r], new Map([[r.id, { untrainable: 'the body is no longer in the message store (retention or deletion)' }]]));
    expect(plan).toEqual({ tokenDeltas: [], totalDeltas: [], learned: [], stamps: [{ id: r.id, outcome: 'untrainable', detail: 'the body is no longer in the message store (retention or deletion)' }] });
  });

  it('when two tenants label messages with the same tokens, then each tenant gets its own deltas', () => {
    const a = row();
    const b = row({ tenantId: 'bbbbbbbb-0000-4000-8000-000000000002', label: 'ham' });
    const plan = planTraining([a, b], new Map([[a.id, { tokenHashes: ['5'] }], [b.id, { tokenHashes: ['5'] }]]));
    expect(plan.tokenDeltas).toEqual([
      { tenantId: a.tenantId, tokenHash: '5', spam: 1, ham: 0 },
      { tenantId: b.tenantId, tokenHash: '5', spam: 0, ham: 1 },
    ]);
  });
});

describe('bodyTokens', () => {
  it('when the body is there, then its tokens are the classifier’s tokens, hashed', async () => {
    const raw = borderlineMessage({ to: 'bob@customer.example' });
    const out = await bodyTokens({ get: async () => raw }, row());
    expect(out).toEqual({ tokenHashes: [...hashTokens(tokenize(await parseForSpam(raw))).keys()] });
  });

  it('when the store no longer has the body, then it is untrainable; when the store cannot be reached, then it throws (retried)', async () => {
    expect(await bodyTokens({ get: async () => Promise.reject(new MoatError('NOT_FOUND', 'no such message')) }, row())).toEqual({
      untrainable: 'the body is no longer in the message store (retention or deletion)',
    });
    await expect(bodyTokens({ get: async () => Promise.reject(new MoatError('STORE_READ_FAILED', 'connection reset')) }, row())).rejects.toThrow(/connection reset/);
  });
});
