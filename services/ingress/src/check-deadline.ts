import { MoatError, withDeadline } from '@moat/runtime';

/**
 * Bounds one SMTP-time lookup (Redis, DNS): after `ms` it rejects with DEPENDENCY_UNAVAILABLE,
 * so the check fails soft instead of stalling the session — ioredis queues commands while it
 * reconnects, a resolver may not answer.
 */
export function withinDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return withDeadline(work, ms, () => new MoatError('DEPENDENCY_UNAVAILABLE', `${what} took longer than ${ms} ms`));
}
