/**
 * What every OpenAI-compatible server of fledge's (the simulator, the real model) does the
 * same way: the version header on every answer, a handler failure answered as a 500 (or the
 * stream cut when headers are out), and 405 with `allow` for a wrong method.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import { sendJson } from './http.js';
import { errorBody } from './openai.js';

export type Route = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createOpenAiServer(version: string, label: string, logger: Logger, route: Route): Server {
  return createServer((req, res) => {
    res.setHeader('x-model-version', version);
    route(req, res).catch((err: unknown) => {
      logger.error({ err, method: req.method, url: req.url }, 'request handler failed');
      if (!res.headersSent) sendJson(res, 500, errorBody(500, `internal error in ${label}: ${(err as Error).message}`));
      else res.destroy();
    });
  });
}

/** True when the method is allowed; otherwise answers 405 naming the allowed ones. */
export function allow(res: ServerResponse, method: string, allowed: string[]): boolean {
  if (allowed.includes(method)) return true;
  sendJson(res, 405, errorBody(405, `method ${method} not allowed; use ${allowed.join(', ')}`), { allow: allowed.join(', ') });
  return false;
}
