import { z } from 'zod';

/** An RFC 5321 envelope address; the null reverse-path is the empty string. */
export const address = z.string().max(320);

/** Where a message body lives in the message store (claim check: bodies never ride the broker). */
export const storeRef = z.object({
  messageId: z.string().uuid(),
  /** Partition key of the message store: the day the message was received (UTC, ISO date). */
  receivedAt: z.string().datetime({ offset: true }),
});
export type StoreRef = z.infer<typeof storeRef>;

export const route = z.object({
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535),
  priority: z.number().int().min(0).max(65535),
});
export type Route = z.infer<typeof route>;

/** An SMTP reply as the remote server gave it: code, enhanced status (RFC 3463) and text. */
export const smtpReply = z.object({
  code: z.number().int().min(200).max(599).nullable(),
  enhanced: z.string().nullable(),
  text: z.string(),
});
export type SmtpReply = z.infer<typeof smtpReply>;

export const direction = z.enum(['inbound', 'outbound']);
export type Direction = z.infer<typeof direction>;
