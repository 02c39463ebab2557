import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { eventually, makeMessage, sendSmtp, type EventTap } from '@moat/testkit';
import type { Stack } from './stack.js';

// Shared by the end-to-end tests of the external spam engines (tests/rspamd.test.ts, tests/spamd.test.ts).

export const uniq = () => randomBytes(4).toString('hex');

/** A short business note: neither engine nor the built-in classifier has a reason to call it spam. */
export const cleanBody = "Hello Bob,\r\n\r\nattached are the minutes of Tuesday's meeting about the office move. Let me know if anything is missing before Friday.\r\n\r\nThanks,\r\nAlice";

/** Sends one message from alice@sender.example to `rcpt` through ingress; returns Moat's message id. */
export async function sendTo(stack: Stack, rcpt: string, body: string): Promise<string> {
  const res = await sendSmtp({ port: stack.smtpPort, from: 'alice@sender.example', to: [rcpt], raw: makeMessage({ from: 'alice@sender.example', to: [rcpt], subject: `quarterly figures ${uniq()}`, body }) });
  expect(res.code).toBe(250);
  return /queued as ([0-9a-f-]{36})/.exec(res.response)![1]!;
}

/** A header field of a delivered message, unfolded (folding only inserted CRLF before white space). */
export function headerOf(data: Buffer, name: string): string | null {
  return new RegExp(`^${name}: (.*(?:\\r\\n[ \\t].*)*)`, 'm').exec(data.toString('utf8'))?.[1]?.replace(/\r\n/g, '') ?? null;
}

/** The message.filtered payload the filter published for a message (waits for it). */
export function filteredFor(tap: EventTap, messageId: string) {
  return eventually(() => tap.events.find((e) => e.routingKey === 'message.filtered' && e.event.payload.messageId === messageId)?.event.payload, 30_000);
}

export function checkNamed(payload: { checks: Array<{ check: string; result: string; reason: string }> }, name: string) {
  return payload.checks.find((c) => c.check === name);
}
