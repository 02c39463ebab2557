/**
 * `work`, or the error `onTimeout` makes once `ms` have passed, whichever comes first. The timer
 * is cleared either way and never keeps the process alive. The work itself is not cancelled (a
 * promise cannot be): the caller moves on, and a late answer is dropped. Used wherever a step
 * must fail soft instead of stalling: a consumer's handler, a lookup at SMTP time, the tenant's
 * spam counts.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
