import dgram from 'node:dgram';
import { isIP } from 'node:net';

/**
 * Resolves when `address` belongs to this host (a socket can be bound to it), rejects naming the
 * variable otherwise: a probe source that cannot be bound would only ever report errors, so the
 * process refuses to start instead. A UDP bind to port 0 is used: it takes no traffic.
 */
export async function assertLocalAddress(address: string, variable: string): Promise<void> {
  const socket = dgram.createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address, port: 0, exclusive: true }, () => resolve());
    });
  } catch (err) {
    throw new Error(`${variable}: ${address} is not an address of this host (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  } finally {
    socket.close();
  }
}
