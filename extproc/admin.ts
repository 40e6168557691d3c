import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { COVERAGE_PATH } from '../common/evaluator-coverage-report.js';
import type { Logger } from '../common/logger.js';

/** What /metrics serves: a prom-client Registry, or anything that renders the same way (the workers' aggregate). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface AdminHandlers {
  registry: MetricsSource;
  ready: () => boolean | Promise<boolean>;
  /** JSON for /debug/state: what extproc currently routes by. */
  debugState: () => unknown;
  /** JSON for /coverage: the evaluators this extproc runs, per service (the controller reads it). */
  coverage?: () => Promise<unknown>;
}

/** /metrics, /healthz, /readyz, /debug/state and /coverage on the admin port. */
export async function startAdminServer(host: string, port: number, handlers: AdminHandlers, logger: Logger): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    /** A JSON answer from a handler that may be async; its failure is a 500 saying what failed. */
    const replyJson = (produce: () => unknown, failed: string) =>
      Promise.resolve()
        .then(produce)
        .then((value) => reply(200, 'application/json', JSON.stringify(value, null, 2)))
        .catch((err: Error) => reply(500, 'text/plain', `${failed}: ${err.message}\n`));
    if (path === '/metrics') {
      handlers.registry
        .metrics()
        .then((text) => reply(200, handlers.registry.contentType, text))
        .catch((err: Error) => reply(500, 'text/plain', `metrics failed: ${err.message}\n`));
    } else if (path === '/healthz') {
      reply(200, 'text/plain', 'ok\n');
    } else if (path === '/readyz') {
      Promise.resolve()
        .then(() => handlers.ready())
        .then((ready) => reply(ready ? 200 : 503, 'text/plain', ready ? 'ready\n' : 'not ready\n'))
        .catch((err: Error) => reply(503, 'text/plain', `not ready: ${err.message}\n`));
    } else if (path === '/debug/state') {
      void replyJson(handlers.debugState, 'state failed');
    } else if (path === COVERAGE_PATH && handlers.coverage) {
      void replyJson(handlers.coverage, 'coverage report failed');
    } else {
      reply(404, 'text/plain', `not found: try /metrics, /healthz, /readyz, /debug/state${handlers.coverage ? `, ${COVERAGE_PATH}` : ''}\n`);
    }
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`extproc admin cannot listen on ${host}:${port}: ${err.message}`)));
    server.listen(port, host, resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  logger.info({ host, port: bound }, 'admin listening');
  return { server, port: bound };
}
