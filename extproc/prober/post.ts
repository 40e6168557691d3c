import http from 'node:http';
import https from 'node:https';

const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 32 }), https: new https.Agent({ keepAlive: true, maxSockets: 32 }) };

/** POSTs JSON with an explicit Host header (fetch cannot set one); resolves when the whole answer is read. */
export function postJson(url: URL, host: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<{ status: number; servedBy: string | undefined }> {
  const secure = url.protocol === 'https:';
  const request = secure ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(
      { protocol: url.protocol, hostname: url.hostname, port: url.port || (secure ? 443 : 80), path: `${url.pathname.replace(/\/+$/, '')}/v1/chat/completions`, method: 'POST', headers: { ...headers, host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: secure ? agents.https : agents.http, signal },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          const served = res.headers['x-fledge-version'];
          resolve({ status: res.statusCode ?? 0, servedBy: Array.isArray(served) ? served[0] : served });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
