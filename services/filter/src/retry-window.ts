/** How long one handling keeps asking an unavailable scanner, and how often. */
export interface RetryWindow {
  forMs: number;
  everyMs: number;
}

/**
 * Calls `attempt` until it succeeds, retrying only errors `isTransient` accepts, for at most
 * `window.forMs`. A scanner that restarts (clamd reloading its database, rspamd reloading its
 * rules) is waited for a while inside the handler before the message goes back to the broker:
 * each redelivery counts towards the queue's delivery limit. The last error is thrown.
 */
export async function retryWithin<T>(attempt: () => Promise<T>, isTransient: (err: unknown) => boolean, window: RetryWindow): Promise<T> {
  const deadline = Date.now() + window.forMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!isTransient(err) || Date.now() + window.everyMs > deadline) throw err;
      await new Promise((r) => setTimeout(r, window.everyMs));
    }
  }
}
