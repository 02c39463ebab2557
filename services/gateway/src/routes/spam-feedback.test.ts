import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { SpamFeedbackTarget } from '@moat/store';
import { labelRefusal } from './spam-feedback.js';

const target = (over: Partial<SpamFeedbackTarget> = {}): SpamFeedbackTarget => ({
  messageId: randomUUID(),
  tenantId: randomUUID(),
  storeReceivedAt: new Date().toISOString(),
  direction: 'inbound',
  quarantine: null,
  bodyStored: true,
  learnedLabel: null,
  latestLabel: null,
  ...over,
});

describe('labelRefusal', () => {
  it('when the message is delivered inbound mail with its body, then it may be labelled', () => {
    expect(labelRefusal(target())).toBeNull();
    expect(labelRefusal(target({ quarantine: { category: 'spam', state: 'quarantined' } }))).toBeNull();
  });

  it('when the message is outbound or a virus, then it is refused whatever else', () => {
    expect(labelRefusal(target({ direction: 'outbound' }))).toMatch(/outbound mail/);
    expect(labelRefusal(target({ quarantine: { category: 'virus', state: 'quarantined' }, learnedLabel: 'spam' }))).toMatch(/virus/);
  });

  it('when the content is gone, then a first label is refused but a relabel (learned already, no body needed) is not', () => {
    expect(labelRefusal(target({ bodyStored: false }))).toMatch(/no longer stored/);
    expect(labelRefusal(target({ quarantine: { category: 'spam', state: 'deleted' }, bodyStored: false }))).toMatch(/was deleted/);
    expect(labelRefusal(target({ bodyStored: false, learnedLabel: 'spam' }))).toBeNull();
  });
});
