import net from 'node:net';

/** A loopback port that was free a moment ago (for a server the test starts that cannot bind port 0 itself). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Whether a daemon on a loopback port answers a ping: sends `request`, then reads until
 * `answer(reply)` decides (true or false; null: read on). No answer within a second is false.
 */
export function pingTcp(port: number, request: string, answer: (reply: string) => boolean | null): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('end', () => done(false));
    socket.on('connect', () => socket.write(request));
    socket.on('data', (c: Buffer) => {
      reply += c.toString('latin1');
      const ok = answer(reply);
      if (ok !== null) done(ok);
    });
  });
}
