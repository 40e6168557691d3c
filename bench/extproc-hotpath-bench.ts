/**
 * extproc's own per-request cost, in process: a request's headers and response headers
 * answered by the production processors (real routing file, the seed's flag file, quality
 * sampling at its default 10%), without gRPC or Envoy. CPU microseconds per request are
 * steadier than end-to-end latency on a shared machine, so each hot-path change is measured
 * here (and end to end by extproc-bench). Prints JSON; BENCH_HOTPATH_REQUESTS sets the count.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { createLogger } from '../common/logger.js';
import { extprocConfigSchema } from '../extproc/config.js';
import { newRequestContext } from '../extproc/request-context.js';
import { startExtproc } from '../extproc/server.js';
import { respond } from '../extproc/stream.js';
import type { HeaderValue, ProcessingRequest } from '../proto/ext-proc.js';

const REQUESTS = Number(process.env.BENCH_HOTPATH_REQUESTS ?? 200_000);
/** flags.cacheSize; BENCH_HOTPATH_FLAG_CACHE=0 measures every request evaluated by OpenFeature. */
const FLAG_CACHE = Number(process.env.BENCH_HOTPATH_FLAG_CACHE ?? 10_000);
const USERS = 1000;
const FLAG_FILE = resolve(import.meta.dirname, '../../examples/flags.json');

function header(key: string, value: string): HeaderValue {
  return { key, raw_value: Buffer.from(value) };
}

/** What Envoy sends for a vegeta GET (same header set as bench/vegeta.ts targets). */
function requestHeaders(user: number, id: number): ProcessingRequest {
  const headers = [
    header(':authority', 'bench'),
    header(':path', '/v1/models'),
    header(':method', 'GET'),
    header(':scheme', 'http'),
    header('user-agent', 'Go-http-client/1.1'),
    header('x-user-id', `bench-user-${user}`),
    header('accept-encoding', 'gzip'),
    header('x-forwarded-proto', 'http'),
    header('x-request-id', `7f0c${id.toString(16).padStart(8, '0')}-aaaa-bbbb-cccc-000000000000`),
  ];
  return { request: 'request_headers', request_headers: { headers: { headers }, end_of_stream: true } };
}

const RESPONSE: ProcessingRequest = {
  request: 'response_headers',
  response_headers: { headers: { headers: [header(':status', '200'), header('content-type', 'application/json'), header('content-length', '11'), header('date', 'Fri, 27 Nov 2026 13:00:00 GMT'), header('server', 'envoy')] }, end_of_stream: false },
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-hotpath-'));
  const routingFile = join(dir, 'routing.yaml');
  writeFileSync(routingFile, toYaml({ services: { bench: { stable: 'v1.2', canary: 'v1.3', canaryWeight: 50, rolloutHashes: { 'v1.2': 'h1', 'v1.3': 'h2' } } } }));
  const config = extprocConfigSchema.parse({ routing: { file: routingFile }, flags: { file: FLAG_FILE, cacheSize: FLAG_CACHE }, grpc: { port: 0 }, admin: { port: 0 } });
  const extproc = await startExtproc(config, createLogger('extproc', 'warn'));
  const messages = Array.from({ length: 4096 }, (_, i) => requestHeaders(i % USERS, i));
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const ctx = newRequestContext();
      await respond(ctx, messages[i & 4095]!, extproc.streamDeps);
      if (!ctx.version) throw new Error('no version decided: the benchmark is not exercising routing');
      await respond(ctx, RESPONSE, extproc.streamDeps);
    }
  };
  try {
    await run(20_000); // JIT warm-up
    const cpu = process.cpuUsage();
    const wall = performance.now();
    await run(REQUESTS);
    const used = process.cpuUsage(cpu);
    const wallMs = performance.now() - wall;
    const result = {
      requests: REQUESTS,
      cpu_us_per_request: round(((used.user + used.system) / REQUESTS)),
      wall_us_per_request: round((wallMs * 1000) / REQUESTS),
      flags: true,
      flag_cache_size: FLAG_CACHE,
      setup: 'request headers + response headers through extproc/stream.ts respond(), seed flag file on, v1.2/v1.3 at 50%, 1,000 sticky users, quality sampling default 10% (header-only: end_of_stream responses)',
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await extproc.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

main().catch((err: Error) => {
  process.stderr.write(`hotpath bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
