import { hostname } from 'node:os';
import { z } from 'zod';
import { queues } from '@moat/contracts';
import { baseConfigShape, dnsConfigShape, envInt, masterKeyShape, quarantinePreviewKeyShape } from '@moat/runtime';
import { defaultMimeLimits } from './mime-structure.js';
import { spamScannerConfigShape } from './scanner-config.js';
import { defaultSpamThresholds } from './spam/classify.js';
import { defaultModelPath } from './spam/model.js';
import { defaultTenantLearning } from './spam/tenant-model.js';

/** The four authentication checks run one after another (DKIM and SPF side by side), and all
 * must end inside the filter queue's handler timeout with room to spare, or a slow sender's DNS
 * would turn into endless redeliveries instead of a temperror result. */
const maxCheckTimeoutMs = Math.floor((queues.filter.handlerTimeoutMs - 10_000) / 4);

const spamScore = z.coerce.number().finite().min(0).max(1000);

export const configSchema = z
  .object({
  ...baseConfigShape,
  ...masterKeyShape,
  ...quarantinePreviewKeyShape,
  ...dnsConfigShape,
  ...spamScannerConfigShape,
  /**
   * The authserv-id of the Authentication-Results header (RFC 8601 §2.5): the name downstream
   * servers use to recognise results Moat computed. Defaults to the machine's host name.
   */
  MOAT_FILTER_AUTHSERV_ID: z
    .string()
    .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$/, 'must be a host name (letters, digits, dots, hyphens)')
    .default(() => hostname()),
  /** Bound on each check (DKIM, SPF, ARC, DMARC); a check that takes longer is a temperror. */
  MOAT_FILTER_CHECK_TIMEOUT_MS: envInt(100, maxCheckTimeoutMs).default(10_000),
  /**
   * How long a domain's DKIM key (or the lack of one) is remembered before it is read again; an
   * activation or retirement through the API takes effect within this bound. 0: read per message.
   */
  MOAT_FILTER_DKIM_KEY_CACHE_MS: envInt(0, 3_600_000).default(60_000),
  /**
   * How long a tenant's filter policy and allow/block lists are remembered before they are read
   * again; a change through the API applies within this bound. 0: read per message.
   */
  MOAT_FILTER_POLICY_CACHE_MS: envInt(0, 3_600_000).default(30_000),
  /** clamd (TCP, INSTREAM) as host:port; unset: no virus scanning (the check reports skip). */
  MOAT_CLAMD_ADDRESS: z
    .string()
    .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port (an IPv6 address in brackets)')
    .optional(),
  /** Bound on one scan (connect, send, verdict). */
  MOAT_CLAMD_TIMEOUT_MS: envInt(100, maxCheckTimeoutMs).default(10_000),
  /**
   * When the scanner gives no verdict: `retry` (the message waits and is filtered again later:
   * never delivered unscanned) or `deliver` (delivered, marked X-Moat-Virus-Status: unscanned).
   */
  MOAT_FILTER_SCANNER_UNAVAILABLE: z.enum(['retry', 'deliver']).default('retry'),
  /**
   * How long one handling keeps retrying an unavailable scanner before the policy applies (under
   * `retry`, the message then goes back to the broker, which redelivers it with back-off, up to
   * the queue's delivery limit, then parks it: visible and replayable).
   */
  MOAT_CLAMD_RETRY_MS: envInt(0, maxCheckTimeoutMs).default(10_000),
  /** A message whose multiparts (and attached messages) nest deeper than this is quarantined (reason `mime: …`). */
  MOAT_FILTER_MAX_MIME_DEPTH: envInt(1, 1000).default(defaultMimeLimits.maxDepth),
  /** A message with more body parts than this is quarantined (reason `mime: …`). */
  MOAT_FILTER_MAX_MIME_PARTS: envInt(1, 1_000_000).default(defaultMimeLimits.maxParts),
  /** The spam model (`npm run filter:train -- --out FILE`); the shipped default otherwise. */
  MOAT_FILTER_SPAM_MODEL_FILE: z.string().min(1).default(defaultModelPath),
  /** Spam score (10 × Bayes probability + rule weights) at or above which a message is quarantined. */
  MOAT_FILTER_SPAM_QUARANTINE_SCORE: spamScore.default(defaultSpamThresholds.quarantine),
  /** Spam score at or above which a delivered message is tagged `unsure`. */
  MOAT_FILTER_SPAM_UNSURE_SCORE: spamScore.default(defaultSpamThresholds.unsure),
  /**
   * Per-tenant learning: how many default-corpus messages one tenant label ("this is spam / not
   * spam") weighs as when its counts are added to the default model's (spam/tenant-model.ts). 0:
   * tenants' counts are not used (the trainer still learns them).
   */
  MOAT_FILTER_SPAM_TENANT_WEIGHT: z.coerce.number().finite().min(0).max(1000).default(defaultTenantLearning.weight),
  /** How long a tenant that has learned nothing is remembered as such (no lookup, no hashing); 0: looked up per message. */
  MOAT_FILTER_SPAM_TENANT_CACHE_MS: envInt(0, 3_600_000).default(10_000),
  /** How often this replica looks for untrained spam feedback (ms). 0: this replica does not train. */
  MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS: envInt(0, 86_400_000).default(30_000),
  /** Feedback rows trained per transaction. */
  MOAT_FILTER_SPAM_TRAIN_BATCH: envInt(1, 1000).default(50),
  })
  .refine((c) => c.MOAT_FILTER_SPAM_UNSURE_SCORE <= c.MOAT_FILTER_SPAM_QUARANTINE_SCORE, {
    message: 'must not be above MOAT_FILTER_SPAM_QUARANTINE_SCORE',
    path: ['MOAT_FILTER_SPAM_UNSURE_SCORE'],
  });

export type Config = z.infer<typeof configSchema>;
