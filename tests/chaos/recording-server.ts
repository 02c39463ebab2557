import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * The customer's server for the chaos suite: records every transaction it completes (which
 * chaos message, for which recipients) and can go down and come back on the same port. While
 * down it closes every open connection and refuses new ones at once (a crashed or rebooting
 * server: connection refused/reset, as Moat's sender sees in production).
 *
 * A transaction is recorded when the final dot has been read, before the 250 is written: a
 * real server has committed the message by then, whether or not the client lives to read the
 * reply. That is exactly the window in which a sender killed mid-transaction causes a
 * duplicate, so the suite counts it.
 */
export class RecordingServer {
  /** chaos id → recipient (lower-case) → times received. */
  readonly received = new Map<string, Map<string, number>>();
  /** chaos id → sha256 of each copy from its X-Chaos-Id line on (what the client sent, if Moat only prepended). */
  readonly digests = new Map<string, string[]>();
  /** chaos id → every transaction's recipients, time and prepended trace headers (to explain a duplicate). */
  readonly transactionsOf = new Map<string, Array<{ at: string; rcpts: string[]; trace: string }>>();
  /** Transactions between the final dot and the reply (a sender killed now duplicates). */
  openData = 0;
  transactions = 0;
  port = 0;
  private server: SMTPServer;
  private down = false;
  private readonly sockets = new Set<import('node:net').Socket>();

  constructor(
    private readonly replyDelayMs = 5,
    private readonly keepDigests = false,
  ) {
    this.server = this.create();
  }

  private create(): SMTPServer {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      maxClients: 1000,
      size: 64 * 1024 * 1024,
      onConnect: (_session, cb) => (this.down ? cb(new Error('down')) : cb()),
      onData: (stream, session, cb) => {
        let head = '';
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => {
          if (head.length < 16_384) head += chunk.toString('latin1');
          if (this.keepDigests) chunks.push(chunk);
        });
        stream.on('end', () => {
          if (this.keepDigests) {
            const data = Buffer.concat(chunks);
            const marker = data.indexOf('X-Chaos-Id: ');
            const digest = createHash('sha256').update(marker < 0 ? data : data.subarray(marker)).digest('hex');
            const key = /^X-Chaos-Id: (\S+)/im.exec(head)?.[1] ?? 'unknown';
            this.digests.set(key, [...(this.digests.get(key) ?? []), digest]);
          }
          const id = /^X-Chaos-Id: (\S+)/im.exec(head)?.[1] ?? 'unknown';
          const rcpts = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
          const byRcpt = this.received.get(id) ?? new Map<string, number>();
          for (const r of rcpts) byRcpt.set(r, (byRcpt.get(r) ?? 0) + 1);
          this.received.set(id, byRcpt);
          const trace = head.slice(0, head.search(/^From: /m) >>> 0).split('\r\n').filter((l) => /^(X-Moat|Received: from)/i.test(l)).join(' | ');
          const list = this.transactionsOf.get(id) ?? [];
          list.push({ at: new Date().toISOString(), rcpts, trace: trace.slice(0, 400) });
          this.transactionsOf.set(id, list);
          this.transactions++;
          this.openData++;
          setTimeout(() => {
            this.openData--;
            cb(null, '2.0.0 Ok: queued');
          }, this.replyDelayMs);
        });
      },
    });
    // A sender killed mid-transaction resets its connection: that is the test, not a failure.
    server.on('error', () => {});
    server.server.on('connection', (socket: import('node:net').Socket) => {
      if (this.down) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Goes down: every connection reset, the port closed (connection refused) until up(). */
  async goDown(): Promise<void> {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.server.close(() => resolve()));
  }

  /** Comes back on the same port. */
  async up(): Promise<void> {
    this.down = false;
    this.server = this.create();
    await this.start(this.port);
  }

  async stop(): Promise<void> {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
