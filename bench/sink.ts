import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface Arrival {
  benchId: string;
  rcpts: number;
  at: number;
  bytes: number;
}

/**
 * A fast local sink playing the customer's server: it reads only as far as the X-Bench-Id header
 * and records when each message arrived, so the benchmark measures Moat, not the sink.
 */
export class Sink {
  readonly arrivals = new Map<string, Arrival>();
  duplicates = 0;
  transactions = 0;
  /** TCP connections open now, and the most open at once since start (or resetPeak()). */
  connections = 0;
  peakConnections = 0;
  private server: SMTPServer;
  port = 0;

  constructor() {
    this.server = this.build();
  }

  resetPeak(): void {
    this.peakConnections = this.connections;
  }

  /** A fresh server: a closed smtp-server cannot listen again (the backlog run restarts the sink). */
  private build(): SMTPServer {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      maxClients: 1000,
      size: 200 * 1024 * 1024,
      onConnect: (session, cb) => {
        cb();
      },
      onData: (stream, session, cb) => {
        let head = '';
        let bytes = 0;
        stream.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (head.length < 8192) head += chunk.toString('latin1', 0, Math.min(chunk.length, 8192 - head.length));
        });
        stream.on('end', () => {
          // A copy, not a slice: V8 keeps a matched substring's whole parent string alive, which
          // over a 100,000-message run is gigabytes of message heads held by `arrivals`.
          const match = /X-Bench-Id: (\S+)/.exec(head)?.[1];
          const id = match ? Buffer.from(match, 'latin1').toString('latin1') : `unknown-${this.transactions}`;
          this.transactions++;
          const prev = this.arrivals.get(id);
          if (prev) {
            this.duplicates++;
            prev.rcpts += session.envelope.rcptTo.length;
          } else {
            this.arrivals.set(id, { benchId: id, rcpts: session.envelope.rcptTo.length, at: performance.now(), bytes });
          }
          cb(null, '2.0.0 Ok: queued');
        });
      },
    });
    // Counted at the TCP level, from accept to close: what the customer's server would count.
    server.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.peakConnections = Math.max(this.peakConnections, this.connections);
      socket.once('close', () => this.connections--);
    });
    return server;
  }

  /** Listens on `port` (0: any free port). */
  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Stops listening: connections to the port are refused (the customer's server is down). */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after stop(). */
  async restart(): Promise<void> {
    this.server = this.build();
    await this.start(this.port);
  }
}
