import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ReadinessCheck = () => boolean | Promise<boolean>;

/**
 * /livez answers 200 while the process runs its event loop; /readyz answers 200 only while
 * every registered dependency check passes (and 503 while shutting down), so a load balancer or
 * Kubernetes stops sending work before the process stops taking it.
 */
export class HealthServer {
  private readonly checks = new Map<string, ReadinessCheck>();
  private server: http.Server | null = null;
  private shuttingDown = false;

  addCheck(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  async report(): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
    const checks: Record<string, boolean> = {};
    for (const [name, check] of this.checks) {
      try {
        checks[name] = await check();
      } catch {
        checks[name] = false;
      }
    }
    const ready = !this.shuttingDown && Object.values(checks).every(Boolean);
    return { ready, checks };
  }

  /** Handles /livez and /readyz; returns false for any other path (for embedding in express). */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return true;
    }
    if (path === '/readyz') {
      const report = await this.report();
      res.writeHead(report.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: report.ready ? 'ready' : 'not ready', ...report }));
      return true;
    }
    return false;
  }

  async listen(port: number, host: string): Promise<number> {
    if (port < 0) return -1;
    this.server = http.createServer((req, res) => {
      void this.handle(req, res).then((handled) => {
        if (!handled) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
