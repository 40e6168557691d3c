/**
 * make bench: the cost extproc adds to a request, measured through a real Envoy.
 *
 * One Envoy serves three listeners over the same near-free upstream (an Envoy
 * direct_response listener): with the ext_proc filter, without it (the baseline), and
 * with ext_proc failing closed (so extproc's own failures become 500s when finding the
 * highest sustainable rate). Writes bench/results/extproc.json, and the added latency of
 * golden inspection (quality.golden.inspect all) against the same requests without it to
 * bench/results/extproc-golden.json (BENCH_ONLY=golden: that part alone).
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { startProcess, waitForHttp } from '../local/child-process.js';
import { startEnvoy } from '../local/envoy.js';
import { freePort } from '../local/ports.js';
import { attack, targets, type AttackReport } from './vegeta.js';

const RATE = Number(process.env.BENCH_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const MAX_RPS_STEPS = (process.env.BENCH_MAX_RPS_STEPS ?? '1000,2000,3000,4000,5000,6000').split(',').map(Number);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 8);
const SAMPLED = 'bench-sampled';
/** Covered by a golden set with `inspect: all`: extproc reads every request body to recognise golden prompts. */
const GOLDEN = 'bench-golden';
/** Below the rate a shared 2-core machine sustains with every body inspected (500/s saturated it at load ~8). */
const GOLDEN_RATE = Number(process.env.BENCH_GOLDEN_RATE ?? 200);

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!;
  const vegeta = process.env.FLEDGE_VEGETA;
  if (!vegeta) throw new Error("FLEDGE_VEGETA is not set: run 'make bench'");
  const dir = mkdtempSync(join(tmpdir(), 'fledge-bench-'));
  const cli = resolve(import.meta.dirname, '../cli/main.js');
  const routingFile = join(dir, 'routing.yaml');
  const service = { stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: 'h1', v2: 'h2' } };
  writeFileSync(routingFile, toYaml({ services: { bench: service, [SAMPLED]: service, [GOLDEN]: service } }));
  // `bench` stays on the header-only path; `bench-sampled` streams 10% of its responses to
  // extproc; `bench-golden` has golden entries, so with `inspect: all` every request body
  // goes to extproc (one more round trip), none sampled by rate.
  const goldenFile = join(dir, 'golden.yaml');
  writeFileSync(goldenFile, toYaml({ entries: [{ id: 'capital', service: GOLDEN, prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } }] }));
  const configFile = join(dir, 'extproc.yaml');
  writeFileSync(configFile, toYaml({ quality: { sampling: { defaultRate: 0, services: { [SAMPLED]: 0.1 } }, golden: { file: goldenFile, inspect: 'all' } } }));
  // A user's chat request (not a golden prompt): what golden inspection costs everyone else.
  const bodyFile = join(dir, 'chat.json');
  writeFileSync(bodyFile, JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'Write a haiku about load balancers.' }], max_tokens: 64 }));

  const [grpcPort, adminPort, listenPort, baselinePort, failClosedPort, directPort, envoyAdmin] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const extproc = startProcess('extproc', process.execPath, [cli, 'extproc', '--config', configFile, '--routing-file', routingFile, '--port', String(grpcPort), '--admin-port', String(adminPort)], join(dir, 'extproc.log'), {
    ...process.env,
    FLEDGE_LOG_LEVEL: 'warn',
  });
  await waitForHttp(extproc, `http://127.0.0.1:${adminPort}/readyz`);
  const upstream = { host: '127.0.0.1', port: directPort! };
  const envoy = await startEnvoy(
    {
      listenPort: listenPort!,
      adminPort: envoyAdmin!,
      extprocPort: grpcPort,
      baselinePort,
      failClosedPort,
      directResponsePort: directPort,
      services: ['bench', SAMPLED, GOLDEN].map((name) => ({ name, stable: 'v1', canary: 'v2', upstreams: { v1: upstream, v2: upstream } })),
    },
    dir,
  );
  const targetFile = (port: number, host = 'bench', body?: string) => {
    const file = join(dir, `targets-${host}-${port}${body ? '-post' : ''}.txt`);
    writeFileSync(file, targets(port, host, 1000, body));
    return file;
  };
  const out = resolve(import.meta.dirname, '../../bench/results');
  mkdirSync(out, { recursive: true });
  try {
    // Golden inspection off vs on: the same POSTs, back to back in this run, at GOLDEN_RATE.
    await attack(vegeta, targetFile(listenPort!, GOLDEN, bodyFile), GOLDEN_RATE, 3);
    await attack(vegeta, targetFile(listenPort!, 'bench', bodyFile), GOLDEN_RATE, 3);
    // extproc's count of request bodies it was sent: proof that "on" inspects and "off" does not.
    const bodies = async () => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      return Number(/^fledge_extproc_phase_duration_seconds_count\{phase="request_body"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const bodiesBefore = await bodies();
    const goldenOff = await attack(vegeta, targetFile(listenPort!, 'bench', bodyFile), GOLDEN_RATE, SECONDS);
    const bodiesBetween = await bodies();
    const goldenOn = await attack(vegeta, targetFile(listenPort!, GOLDEN, bodyFile), GOLDEN_RATE, SECONDS);
    const bodiesAfter = await bodies();
    const golden = {
      command: 'make bench (or BENCH_ONLY=golden make bench for this part alone)',
      measured_at: new Date().toISOString(),
      load_average_1m_at_start: round(loadAtStart),
      cpus: cpus().length,
      rate_rps: GOLDEN_RATE,
      duration_s: SECONDS,
      off: { p50_ms: round(goldenOff.p50Ms), p99_ms: round(goldenOff.p99Ms), success: goldenOff.successRatio, requests: goldenOff.requests, request_bodies_to_extproc: bodiesBetween - bodiesBefore },
      on: { p50_ms: round(goldenOn.p50Ms), p99_ms: round(goldenOn.p99Ms), success: goldenOn.successRatio, requests: goldenOn.requests, request_bodies_to_extproc: bodiesAfter - bodiesBetween },
      added_p50_ms: round(goldenOn.p50Ms - goldenOff.p50Ms),
      added_p99_ms: round(goldenOn.p99Ms - goldenOff.p99Ms),
      setup: 'chat completion POSTs (a non-golden prompt, 110-byte body), 1,000 distinct users, through the ext_proc listener of one Envoy (--concurrency 1) to a direct_response upstream; off: a service without golden entries (header-only path: request and response headers); on: a service with golden entries and quality.golden.inspect all (every request body also sent to extproc, BUFFERED_PARTIAL, and matched against the golden prompts; no response body, as none matches)',
    };
    writeFileSync(join(out, 'extproc-golden.json'), `${JSON.stringify(golden, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(golden, null, 2)}\n`);
    if (process.env.BENCH_ONLY === 'golden') return;

    // Warm both paths (JIT, connection pools) before measuring.
    await attack(vegeta, targetFile(listenPort!), RATE, 3);
    await attack(vegeta, targetFile(baselinePort!), RATE, 3);
    await attack(vegeta, targetFile(listenPort!, SAMPLED), RATE, 3);
    const baseline = await attack(vegeta, targetFile(baselinePort!), RATE, SECONDS);
    const withExtproc = await attack(vegeta, targetFile(listenPort!), RATE, SECONDS);
    const sampled = await attack(vegeta, targetFile(listenPort!, SAMPLED), RATE, SECONDS);
    const steps: AttackReport[] = [];
    let maxRps = 0;
    for (const rate of MAX_RPS_STEPS) {
      const step = await attack(vegeta, targetFile(failClosedPort!), rate, STEP_SECONDS);
      steps.push(step);
      log(`max_rps step ${rate}/s: success ${(step.successRatio * 100).toFixed(2)}% throughput ${step.throughput.toFixed(0)}/s p99 ${step.p99Ms.toFixed(2)} ms`);
      if (step.successRatio < 0.99 || step.throughput < rate * 0.95) break;
      maxRps = rate;
    }
    const result = {
      rate_rps: RATE,
      duration_s: SECONDS,
      baseline: { p50_ms: round(baseline.p50Ms), p99_ms: round(baseline.p99Ms) },
      extproc: { p50_ms: round(withExtproc.p50Ms), p99_ms: round(withExtproc.p99Ms) },
      added_p50_ms: round(withExtproc.p50Ms - baseline.p50Ms),
      added_p99_ms: round(withExtproc.p99Ms - baseline.p99Ms),
      sampled_10pct: { p50_ms: round(sampled.p50Ms), p99_ms: round(sampled.p99Ms) },
      added_p99_sampled_10pct_ms: round(sampled.p99Ms - baseline.p99Ms),
      max_rps: maxRps,
      max_rps_steps: steps.map((s) => ({ rate: s.rate, success: round(s.successRatio), throughput: round(s.throughput), p99_ms: round(s.p99Ms) })),
      success: { baseline: baseline.successRatio, extproc: withExtproc.successRatio, sampled_10pct: sampled.successRatio },
      setup: 'one Envoy (--concurrency 1), upstream = Envoy direct_response, extproc header-only path (request + response headers); sampled_10pct: same, plus the response body streamed to extproc (mode_override) for 10% of requests by x-request-id, vegeta open-model fixed rate, 1,000 distinct users',
    };
    writeFileSync(join(out, 'extproc.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await envoy.process.stop();
    await extproc.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
