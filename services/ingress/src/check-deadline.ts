import { MoatError } from '@moat/runtime';

/**
 * Bounds one SMTP-time lookup (Redis, DNS): after `ms` it rejects with DEPENDENCY_UNAVAILABLE,
 * so the check fails soft instead of stalling the session — ioredis queues commands while it reconnects, a resolver may not answer.
 */
export async function withinDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MoatError('DEPENDENCY_UNAVAILABLE', `${what} took longer than ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
