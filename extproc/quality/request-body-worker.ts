/**
 * The worker thread that reads large request bodies (request-body-reader.ts), so a JSON.parse
 * of a megabyte never holds up the routing decisions on extproc's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readRequestBody } from './read-request-body.js';

export interface BodyJob {
  id: number;
  body: Uint8Array;
  mayRewrite: boolean;
}

const longestGoldenKey = (workerData as { longestGoldenKey: number }).longestGoldenKey;

parentPort?.on('message', (job: BodyJob) => {
  try {
    const read = readRequestBody(job.body, job.mayRewrite, longestGoldenKey);
    // Its own ArrayBuffer (a Buffer may share Node's pool), handed over rather than copied.
    const rewrite = read.usageRewrite ? new Uint8Array(read.usageRewrite) : undefined;
    parentPort!.postMessage({ id: job.id, facts: read.facts, goldenKey: read.goldenKey, usageRewrite: rewrite }, rewrite ? [rewrite.buffer] : []);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
