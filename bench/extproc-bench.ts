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

/** --quick (CI): short runs that produce every field, with no targets judged. */
const QUICK = process.argv.includes('--quick');
/** extproc's flags.cacheSize; BENCH_FLAG_CACHE=0 evaluates every request through OpenFeature. */
const FLAG_CACHE = Number(process.env.BENCH_FLAG_CACHE ?? 10_000);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 3 : 20));
const MAX_RPS_STEPS = (process.env.BENCH_MAX_RPS_STEPS ?? (QUICK ? '1000,2000' : '1000,2000,3000,4000,5000,6000,7000,8000,10000')).split(',').map(Number);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? (QUICK ? 2 : 8));
/** A step counts only with every request answered and p99 at or below this. */
const MAX_RPS_P99_MS = 10;
/** The seed's flag file (examples/flags.json is a copy of it). */
const FLAG_FILE = resolve(import.meta.dirname, '../../examples/flags.json');
/** Just under Envoy's 1 MiB per-connection buffer, so BUFFERED_PARTIAL hands extproc the whole body. */
const BIG_BODY_BYTES = 1_000_000;
/** Requests carrying it are always sampled (a quality.sampling.always rule): their body goes to extproc. */
const BIG_BODY_HEADER = 'x-bench-big-body';
/** How Envoy reaches extproc: tcp (loopback port) or unix (a socket, Envoy's pipe address); unix writes extproc-unix.json. */
const TRANSPORT = process.env.BENCH_EXTPROC_TRANSPORT === 'unix' ? 'unix' : 'tcp';
/** `fledge extproc --workers N`, and Envoy's worker threads (each its own ext_proc connection, so N workers can all be busy). */
const WORKERS = Number(process.env.BENCH_EXTPROC_WORKERS ?? 1);
const ENVOY_CONCURRENCY = Number(process.env.BENCH_ENVOY_CONCURRENCY ?? 1);
const REQUIRED_FIELDS = ['p50_ratio', 'p99_ratio', 'added_p50_ms', 'added_p99_ms', 'max_rps', 'max_rps_baseline', 'body_p99_delta_ms'] as const;
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
  // The seed's version names, so the seed's flag file is evaluated for these services.
  const service = { stable: 'v1.2', canary: 'v1.3', canaryWeight: 50, rolloutHashes: { 'v1.2': 'h1', 'v1.3': 'h2' } };
  writeFileSync(routingFile, toYaml({ services: { bench: service, [SAMPLED]: service, [GOLDEN]: service } }));
  // `bench` stays on the header-only path; `bench-sampled` streams 10% of its responses to
  // extproc; `bench-golden` has golden entries, so with `inspect: all` every request body
  // goes to extproc (one more round trip), none sampled by rate.
  const goldenFile = join(dir, 'golden.yaml');
  writeFileSync(goldenFile, toYaml({ entries: [{ id: 'capital', service: GOLDEN, prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } }] }));
  const configFile = join(dir, 'extproc.yaml');
  writeFileSync(
    configFile,
    toYaml({
      flags: { file: FLAG_FILE, cacheSize: FLAG_CACHE },
      quality: { sampling: { defaultRate: 0, services: { [SAMPLED]: 0.1 }, always: [{ service: SAMPLED, header: BIG_BODY_HEADER }] }, golden: { file: goldenFile, inspect: 'all' } },
    }),
  );
  // A user's chat request (not a golden prompt): what golden inspection costs everyone else.
  const bodyFile = join(dir, 'chat.json');
  writeFileSync(bodyFile, JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'Write a haiku about load balancers.' }], max_tokens: 64 }));

  const [grpcPort, adminPort, listenPort, baselinePort, failClosedPort, directPort, envoyAdmin] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const extprocSocket = TRANSPORT === 'unix' ? join(dir, 'extproc.sock') : undefined;
  const listen = extprocSocket ? ['--listen', `unix:${extprocSocket}`] : ['--port', String(grpcPort)];
  const extproc = startProcess('extproc', process.execPath, [cli, 'extproc', '--config', configFile, '--routing-file', routingFile, ...listen, '--admin-port', String(adminPort), '--workers', String(WORKERS)], join(dir, 'extproc.log'), {
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
      extprocSocket,
      baselinePort,
      failClosedPort,
      directResponsePort: directPort,
      services: ['bench', SAMPLED, GOLDEN].map((name) => ({ name, stable: 'v1.2', canary: 'v1.3', upstreams: { 'v1.2': upstream, 'v1.3': upstream } })),
    },
    dir,
    'envoy',
    ENVOY_CONCURRENCY,
  );
  const targetFile = (port: number, host = 'bench', body?: string) => {
    const file = join(dir, `targets-${host}-${port}${body ? '-post' : ''}.txt`);
    writeFileSync(file, targets(port, host, 1000, body));
    return file;
  };
  const bigBodyFile = join(dir, 'big-chat.json');
  writeFileSync(bigBodyFile, bigChatBody(BIG_BODY_BYTES));
  const bigBodyTargets = join(dir, 'targets-big.txt');
  writeFileSync(bigBodyTargets, `POST http://127.0.0.1:${listenPort}/v1/chat/completions\nHost: ${SAMPLED}\nx-user-id: bench-big\n${BIG_BODY_HEADER}: 1\nContent-Type: application/json\n@${bigBodyFile}\n`);
  // The control: the same bodies through Envoy alone, so the delta below separates extproc's share from Envoy's.
  const bigBodyBaselineTargets = join(dir, 'targets-big-baseline.txt');
  writeFileSync(bigBodyBaselineTargets, `POST http://127.0.0.1:${baselinePort}/v1/chat/completions\nHost: ${SAMPLED}\nx-user-id: bench-big\nContent-Type: application/json\n@${bigBodyFile}\n`);
  async function goldenBench(vegeta: string): Promise<void> {
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
  }
  const out = resolve(import.meta.dirname, '../../bench/results');
  mkdirSync(out, { recursive: true });
  try {
    if (!QUICK && process.env.BENCH_ONLY !== 'extproc') await goldenBench(vegeta);
    if (process.env.BENCH_ONLY === 'golden') return;
    // Warm both paths (JIT, connection pools) before measuring.
    await attack(vegeta, targetFile(listenPort!), RATE, QUICK ? 1 : 3);
    await attack(vegeta, targetFile(baselinePort!), RATE, QUICK ? 1 : 3);
    await attack(vegeta, targetFile(listenPort!, SAMPLED), RATE, QUICK ? 1 : 3);
    const baseline = await attack(vegeta, targetFile(baselinePort!), RATE, SECONDS);
    const withExtproc = await attack(vegeta, targetFile(listenPort!), RATE, SECONDS);
    const sampled = await attack(vegeta, targetFile(listenPort!, SAMPLED), RATE, SECONDS);
    // The same decisions while a ~1 MiB request body is sampled (read and parsed by extproc) every second.
    const [withBodies, bodies] = await Promise.all([
      attack(vegeta, targetFile(listenPort!), RATE, SECONDS),
      attack(vegeta, bigBodyTargets, 1, SECONDS),
    ]);
    const [baselineWithBodies, baselineBodies] = await Promise.all([attack(vegeta, targetFile(baselinePort!), RATE, SECONDS), attack(vegeta, bigBodyBaselineTargets, 1, SECONDS)]);
    const baselineSteps = await maxRate(vegeta, targetFile(baselinePort!), 'baseline');
    const extprocSteps = await maxRate(vegeta, targetFile(failClosedPort!), 'extproc');
    const result = {
      command: QUICK ? 'node dist/bench/extproc-bench.js --quick (CI: fields only, no targets)' : 'make bench',
      measured_at: new Date().toISOString(),
      load_average_1m_at_start: round(loadAtStart),
      cpus: cpus().length,
      quick: QUICK,
      flags: true,
      flag_cache_size: FLAG_CACHE,
      transport: TRANSPORT,
      extproc_workers: WORKERS,
      envoy_concurrency: ENVOY_CONCURRENCY,
      flag_file: FLAG_FILE,
      rate_rps: RATE,
      duration_s: SECONDS,
      baseline: { p50_ms: round(baseline.p50Ms), p99_ms: round(baseline.p99Ms) },
      extproc: { p50_ms: round(withExtproc.p50Ms), p99_ms: round(withExtproc.p99Ms) },
      p50_ratio: round(withExtproc.p50Ms / baseline.p50Ms),
      p99_ratio: round(withExtproc.p99Ms / baseline.p99Ms),
      added_p50_ms: round(withExtproc.p50Ms - baseline.p50Ms),
      added_p99_ms: round(withExtproc.p99Ms - baseline.p99Ms),
      sampled_10pct: { p50_ms: round(sampled.p50Ms), p99_ms: round(sampled.p99Ms) },
      added_p99_sampled_10pct_ms: round(sampled.p99Ms - baseline.p99Ms),
      with_1mib_bodies: { p50_ms: round(withBodies.p50Ms), p99_ms: round(withBodies.p99Ms), bodies_sent: bodies.requests, bodies_success: bodies.successRatio },
      body_p99_delta_ms: round(withBodies.p99Ms - withExtproc.p99Ms),
      baseline_with_1mib_bodies: { p50_ms: round(baselineWithBodies.p50Ms), p99_ms: round(baselineWithBodies.p99Ms), bodies_sent: baselineBodies.requests, bodies_success: baselineBodies.successRatio },
      baseline_body_p99_delta_ms: round(baselineWithBodies.p99Ms - baseline.p99Ms),
      max_rps: extprocSteps.max,
      max_rps_baseline: baselineSteps.max,
      max_rps_steps: extprocSteps.steps,
      max_rps_baseline_steps: baselineSteps.steps,
      success: { baseline: baseline.successRatio, extproc: withExtproc.successRatio, sampled_10pct: sampled.successRatio, with_1mib_bodies: withBodies.successRatio },
      targets: QUICK
        ? null
        : {
            p50_ratio_le_1_5: round(withExtproc.p50Ms / baseline.p50Ms) <= 1.5,
            p99_ratio_le_2_5: round(withExtproc.p99Ms / baseline.p99Ms) <= 2.5,
            max_rps_ge_half_baseline: baselineSteps.max > 0 && extprocSteps.max >= 0.5 * baselineSteps.max,
            body_p99_delta_le_0_5_ms: withBodies.p99Ms - withExtproc.p99Ms <= 0.5,
          },
      setup: `one Envoy (--concurrency ${ENVOY_CONCURRENCY}), extproc with --workers ${WORKERS}, upstream = Envoy direct_response; flags on (${FLAG_FILE}, the seed's flag file: its version flag names v1.3, so it is evaluated for every request; it has no kill-switch flag, so that one is not), services on the seed's versions v1.2 (stable) / v1.3 (canary, 50%), 1,000 distinct sticky users (x-user-id), header-only path (request + response headers); sampled_10pct: plus the response body streamed to extproc for 10% of requests by x-request-id; with_1mib_bodies: the header-only run again while one ${BIG_BODY_BYTES}-byte chat request per second is sampled (its body read and parsed by extproc); baseline_with_1mib_bodies: the control, the Envoy-alone run again while the same bodies go through the listener without ext_proc; max_rps: fixed-rate steps (vegeta open model) with 100% success, throughput >= 95% of the rate and p99 <= ${MAX_RPS_P99_MS} ms, extproc through a fail-closed ext_proc listener (its failures are 500s), baseline through the listener without ext_proc`,
    };
    const missing = REQUIRED_FIELDS.filter((f) => typeof result[f] !== 'number' || !Number.isFinite(result[f] as number));
    if (missing.length > 0) throw new Error(`bench result lacks finite ${missing.join(', ')}`);
    const variant = `${TRANSPORT === 'unix' ? '-unix' : ''}${WORKERS > 1 ? `-workers${WORKERS}` : ''}${ENVOY_CONCURRENCY > 1 ? `-envoy${ENVOY_CONCURRENCY}` : ''}`;
    writeFileSync(join(out, `extproc${variant}${QUICK ? '-quick' : ''}.json`), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await envoy.process.stop();
    await extproc.stop();
  }
}

/** Fixed-rate steps until one fails (not every request answered, throughput short, or p99 over the bound). */
async function maxRate(vegeta: string, targetsFile: string, what: string): Promise<{ max: number; steps: { rate: number; success: number; throughput: number; p99_ms: number }[] }> {
  const steps: AttackReport[] = [];
  let max = 0;
  for (const rate of MAX_RPS_STEPS) {
    const step = await attack(vegeta, targetsFile, rate, STEP_SECONDS);
    steps.push(step);
    log(`max_rps ${what} step ${rate}/s: success ${(step.successRatio * 100).toFixed(2)}% throughput ${step.throughput.toFixed(0)}/s p99 ${step.p99Ms.toFixed(2)} ms`);
    if (step.successRatio < 1 || step.throughput < rate * 0.95 || step.p99Ms > MAX_RPS_P99_MS) break;
    max = rate;
  }
  return { max, steps: steps.map((s) => ({ rate: s.rate, success: round(s.successRatio), throughput: round(s.throughput), p99_ms: round(s.p99Ms) })) };
}

/** A chat request of about `bytes` bytes: one long user message. */
function bigChatBody(bytes: number): string {
  const shell = JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: '' }], max_tokens: 16 });
  const words = 'the quick brown fox jumps over the lazy dog '.repeat(Math.ceil(bytes / 44)).slice(0, bytes - shell.length);
  return JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: words }], max_tokens: 16 });
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
