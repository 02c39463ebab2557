import { z } from 'zod';
import { queues } from '@moat/contracts';
import { envInt } from '@moat/runtime';

/** Room inside the filter queue's handler timeout (as for the authentication checks in config.ts). */
const maxScanMs = Math.floor((queues.filter.handlerTimeoutMs - 10_000) / 4);

/** host:port as MOAT_*_ADDRESS variables write it (an IPv6 address in brackets). */
const hostPort = z.string().regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port (an IPv6 address in brackets)');

/** Splits a validated host:port; the brackets of an IPv6 address are removed. */
export function parseHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(at + 1)) };
}

/**
 * The external spam engines' settings, spread into the filter's config schema (config.ts).
 * Unset addresses: the engine is not asked and no check record is written for it.
 */
export const spamScannerConfigShape = {
  /** rspamd's normal worker, e.g. http://127.0.0.1:11333 (POST /checkv2); unset: rspamd is off. */
  MOAT_RSPAMD_URL: z
    .string()
    .url()
    .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http:// or https:// URL')
    .optional(),
  /** Bound on one rspamd request (connect, upload, its checks, the reply). */
  MOAT_RSPAMD_TIMEOUT_MS: envInt(100, maxScanMs).default(10_000),
  /** Points per rspamd point in the combined spam score (README: "rspamd and spamd"). */
  MOAT_RSPAMD_WEIGHT: z.coerce.number().finite().min(0).max(100).default(0.35),
  /** Sent as rspamd's Password header, when the worker (or a proxy before it) asks for one. */
  MOAT_RSPAMD_PASSWORD: z.string().min(1).optional(),
  /** How long one handling keeps retrying an unreachable rspamd before the scanner-unavailable policy applies. */
  MOAT_RSPAMD_RETRY_MS: envInt(0, maxScanMs).default(10_000),
  /** SpamAssassin's spamd (TCP, SPAMC/1.5 SYMBOLS) as host:port; unset: spamd is off. */
  MOAT_SPAMD_ADDRESS: hostPort.optional(),
  /** Bound on one spamd exchange (connect, send, its checks, the reply). */
  MOAT_SPAMD_TIMEOUT_MS: envInt(100, maxScanMs).default(10_000),
  /** Points per spamd point in the combined spam score (README: "rspamd and spamd"). */
  MOAT_SPAMD_WEIGHT: z.coerce.number().finite().min(0).max(100).default(0.5),
  /** How long one handling keeps retrying an unreachable spamd before the scanner-unavailable policy applies. */
  MOAT_SPAMD_RETRY_MS: envInt(0, maxScanMs).default(10_000),
};
