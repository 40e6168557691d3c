import { createServer } from 'node:net';

/** A port the OS says is free on loopback right now. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True if something already listens on host:port. */
export async function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(true));
    srv.listen(port, host, () => srv.close(() => resolve(false)));
  });
}

/** The first of `count` consecutive ports that are all free right now (model servers take consecutive ports). */
export async function freePortRun(count: number, host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort(host);
    if (first + count - 1 > 65535) continue;
    let free = true;
    for (let p = first + 1; p < first + count && free; p++) free = !(await portInUse(p, host));
    if (free) return first;
  }
  throw new Error(`no run of ${count} free consecutive ports found on ${host}`);
}
