import { describe, expect, it } from 'vitest';
import { reconcile, type Observations } from './reconcile.js';

const none: Observations = { received: new Map(), tracked: new Map(), pendingDeliveries: new Map(), parked: new Set() };

describe('chaos reconciliation', () => {
  it('when an accepted recipient is neither received, tracked, pending nor parked, then it is lost', () => {
    const r = reconcile([{ chaosId: 'm1', rcpts: ['a@x', 'b@x'], code: 250 }], {
      ...none,
      received: new Map([['m1', new Map([['a@x', 1]])]]),
    });
    expect(r).toMatchObject({ accepted: 1, recipients: 2, delivered: 1, lost: 1, lostExamples: ['m1 → b@x (tracking: nothing)'] });
  });

  it('when tracking says delivered but the customer has no copy, then it is lost', () => {
    const r = reconcile([{ chaosId: 'm1', rcpts: ['a@x'], code: 250 }], { ...none, tracked: new Map([['m1', new Map([['a@x', 'delivered' as const]])]]) });
    expect(r.lost).toBe(1);
  });

  it('when a recipient is bounced, queued or parked, then it is visible, not lost; extra copies are duplicates', () => {
    const r = reconcile(
      [
        { chaosId: 'm1', rcpts: ['a@x', 'b@x', 'c@x', 'd@x'], code: 250 },
        { chaosId: 'm2', rcpts: ['a@x'], code: 250 },
      ],
      {
        received: new Map([['m1', new Map([['d@x', 3]])]]),
        tracked: new Map([['m1', new Map([['a@x', 'bounced' as const], ['b@x', 'deferred' as const]])]]),
        pendingDeliveries: new Map(),
        parked: new Set(['m2']),
      },
    );
    expect(r).toMatchObject({ recipients: 5, final: 1, queued: 1, parked: 1, delivered: 1, duplicated: 2 });
    // c@x: no tracking, no pending row, its message not parked → lost.
    expect(r.lost).toBe(1);
  });

  it('when the client got no 250, then the message is not accepted; a copy that arrived anyway is reported unacknowledged', () => {
    const r = reconcile(
      [
        { chaosId: 'm1', rcpts: ['a@x'], code: 451 },
        { chaosId: 'm2', rcpts: ['a@x'], code: 0 },
        { chaosId: 'm3', rcpts: ['a@x'], code: 554 },
        { chaosId: 'm4', rcpts: ['a@x'], refusedRcpts: ['b@x'], code: 250 },
      ],
      { ...none, received: new Map([['m2', new Map([['a@x', 1]])], ['m4', new Map([['a@x', 1], ['b@x', 1]])]]) },
    );
    expect(r).toMatchObject({ sent: 4, accepted: 1, tempRefused: 1, dropped: 1, permRefused: 1, refusedRcpts: 1, recipients: 1, delivered: 1, lost: 0, deliveredUnacknowledged: 2 });
  });
});
