import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A plain TCP forwarder on loopback, to put a breakable network between a client and a
 * real server: cut() drops every connection and refuses new ones until restore();
 * `delayMs` holds every byte from the server back that long (a slow server), in order.
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  private refusing = false;
  port = 0;
  /** Added to every server → client byte's trip; 0 forwards at once. */
  delayMs = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      // Each chunk leaves at (its arrival + delayMs), never before the chunk ahead of it.
      let previous: Promise<void> = Promise.resolve();
      upstream.on('data', (chunk: Buffer) => {
        const due = Date.now() + this.delayMs;
        previous = previous.then(async () => {
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (!client.destroyed) client.write(chunk);
        });
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Connections currently open through the proxy. */
  get open(): number {
    return this.sockets.size / 2;
  }

  cut(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.refusing = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
