import http from 'node:http';
import net from 'node:net';

export interface ModelResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The version that answered, as the simulated model names itself. */
  servedBy: string | undefined;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** A chat completion through Envoy with an explicit Host (fetch cannot set Host). */
export function chat(port: number, opts: { host: string; user?: string; segment?: string; headers?: Record<string, string>; body?: unknown }): Promise<ModelResponse> {
  const headers: Record<string, string> = { host: opts.host, 'content-type': 'application/json', ...opts.headers };
  if (opts.user !== undefined) headers['x-user-id'] = opts.user;
  if (opts.segment !== undefined) headers['x-user-segment'] = opts.segment;
  const body = JSON.stringify(opts.body ?? { model: 'chat', messages: [{ role: 'user', content: 'hello' }] });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const served = res.headers['x-model-version'];
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), servedBy: Array.isArray(served) ? served[0] : served });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `task` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A chat completion over a raw HTTP/1.1 connection, with header lines sent byte for byte
 * (any case, repeated, odd whitespace), which Node's HTTP client would normalise.
 */
export function rawChat(port: number, host: string, headerLines: string[]): Promise<{ status: number; servedBy: string | undefined; reason: string | undefined }> {
  const body = JSON.stringify({ model: host, messages: [{ role: 'user', content: 'hello' }] });
  const head = [`POST /v1/chat/completions HTTP/1.1`, `Host: ${host}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', ...headerLines];
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${head.join('\r\n')}\r\n\r\n${body}`));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [statusLine = '', ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
      const header = (name: string) => lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), servedBy: header('x-model-version'), reason: header('x-fledge-reason') });
    });
  });
}
