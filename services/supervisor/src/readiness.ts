/** A process's readiness endpoint. */
export interface ReadinessTarget {
  name: string;
  url: string;
}

export interface ReadinessResult {
  ready: string[];
  notReady: string[];
}

export interface ReadinessOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Ends the wait early (the stack is stopping). */
  signal?: AbortSignal;
  /** Called once per target when it first answers 200. */
  onReady?: (name: string) => void;
}

/**
 * Polls every target's /readyz until each answers 200 or the time is up. A service answers 503
 * until all of its dependencies are connected, and not at all until it listens, so both count
 * as "not yet".
 */
export async function waitForReadiness(targets: readonly ReadinessTarget[], opts: ReadinessOptions): Promise<ReadinessResult> {
  const interval = opts.intervalMs ?? 250;
  const deadline = Date.now() + opts.timeoutMs;
  const pending = new Map(targets.map((t) => [t.name, t.url]));
  const ready: string[] = [];
  while (pending.size > 0 && Date.now() < deadline && !opts.signal?.aborted) {
    await Promise.all(
      [...pending].map(async ([name, url]) => {
        if (await answersReady(url)) {
          pending.delete(name);
          ready.push(name);
          opts.onReady?.(name);
        }
      }),
    );
    if (pending.size > 0) await sleep(interval, opts.signal);
  }
  return { ready, notReady: [...pending.keys()] };
}

async function answersReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer().catch(() => undefined);
    return res.status === 200;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The address to poll a service's admin port on: a wildcard bind is reached over loopback. */
export function adminUrl(host: string, port: number, path: '/readyz' | '/livez' = '/readyz'): string {
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const authority = reachable.includes(':') ? `[${reachable}]` : reachable;
  return `http://${authority}:${port}${path}`;
}
