import { createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

export interface Transaction {
  mailFrom: string;
  rcptTo: string[];
  data: Buffer;
  remoteAddress: string;
  helo: string;
  secure: boolean;
  at: number;
}

/** One RCPT TO the server answered (probes never reach DATA, so they show up only here). */
export interface RcptSeen {
  remoteAddress: string;
  mailFrom: string;
  rcpt: string;
  accepted: boolean;
}

export interface CustomerServerOptions {
  /** Reply to RCPT for this address (and client): return null to accept, or [code, text] to refuse. */
  rcptReply?: (rcpt: string, client: { remoteAddress: string }) => [number, string] | null;
  /** Refuse clients whose address is not accepted (emulates a port-25 lock-down). */
  allowClient?: (remoteAddress: string) => boolean;
  /** Reply to DATA (after the body): null accepts with 250. */
  dataReply?: (tx: Transaction) => [number, string] | null;
  host?: string;
  /** Offer STARTTLS (smtp-server's built-in self-signed certificate). Default off. */
  starttls?: boolean;
  /** Wait this long before answering the final dot (a slow server: connections to it pile up). */
  dataDelayMs?: number;
}

/**
 * A real SMTP server playing the customer's mail server: it records every transaction (MAIL
 * FROM, RCPT TOs, the exact bytes, the source address) so tests assert on what arrived.
 */
export class CustomerServer {
  readonly transactions: Transaction[] = [];
  readonly rcpts: RcptSeen[] = [];
  /** DATA commands the server accepted (a subnet-check probe must never send one). */
  dataCommands = 0;
  /** TCP connections open now, and the most that were open at once since start (or resetPeak()). */
  connections = 0;
  peakConnections = 0;
  private server: SMTPServer;
  port = 0;
  private readonly host: string;

  constructor(private readonly opts: CustomerServerOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.server = this.build();
  }

  /** Starts counting the peak again from the connections open now. */
  resetPeak(): void {
    this.peakConnections = this.connections;
  }

  private build(): SMTPServer {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: this.opts.starttls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      size: 50 * 1024 * 1024,
      onConnect: (session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        if (this.opts.allowClient && !this.opts.allowClient(session.remoteAddress)) {
          const err = new Error('Access denied: your address is not allowed') as Error & { responseCode: number };
          err.responseCode = 554;
          return cb(err);
        }
        cb();
      },
      onRcptTo: (address, session, cb) => {
        const reply = this.opts.rcptReply?.(address.address, { remoteAddress: session.remoteAddress }) ?? null;
        this.rcpts.push({ remoteAddress: session.remoteAddress, mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcpt: address.address, accepted: reply === null });
        if (reply) {
          const err = new Error(reply[1]) as Error & { responseCode: number };
          err.responseCode = reply[0];
          return cb(err);
        }
        cb();
      },
      onData: (stream, session, cb) => {
        this.dataCommands++;
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const tx: Transaction = {
            mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks),
            remoteAddress: session.remoteAddress,
            helo: session.hostNameAppearsAs,
            secure: session.secure,
            at: Date.now(),
          };
          const reply = this.opts.dataReply?.(tx) ?? null;
          if (reply) {
            const err = new Error(reply[1]) as Error & { responseCode: number };
            err.responseCode = reply[0];
            return cb(err);
          }
          const accept = () => {
            this.transactions.push(tx);
            cb(null, `2.0.0 Ok: queued as ${createHash('sha1').update(tx.data).digest('hex').slice(0, 10)}`);
          };
          if (this.opts.dataDelayMs) setTimeout(accept, this.opts.dataDelayMs);
          else accept();
        });
      },
    });
    // Counted at the TCP level: from accept to close, whatever the session did.
    server.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.peakConnections = Math.max(this.peakConnections, this.connections);
      socket.once('close', () => this.connections--);
    });
    return server;
  }

  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => resolve());
    });
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Stops listening (the customer's server is down); restart() brings it back on the same port. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async restart(): Promise<void> {
    this.server = this.build();
    await this.start(this.port);
  }
}
