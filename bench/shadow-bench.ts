/**
 * What shadow mode costs the user, in one run on the real local stack (Envoy, extproc,
 * Redis, simulated models): the same open-model traffic through phases with the shadow share
 * off, at the shadow-canary policy's 20%, at 100%, and at 100% with a candidate that hangs
 * and one that fails every request. Shadow is set the way the local controller sets it
 * (LocalTrafficRouter.setMirror), so extproc copies requests itself through the stack's Envoy,
 * as in production. Per phase: the users' p50/p99/max, failures, answers not from the stable,
 * and the copies extproc sent or dropped. Writes bench/results/shadow.json.
 *
 *   node dist/bench/shadow-bench.js [--rps 50] [--phase-seconds 30]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalTrafficRouter } from '../controller/local/local-router.js';
import { packageFile } from '../local/package-paths.js';
import { benchStackPorts } from './stack-ports.js';
import { demoUsers } from '../local/rollout-demo-config.js';
import { stackConfigSchema } from '../local/stack-config.js';
import { LocalStack } from '../local/stack.js';
import { TrafficGenerator, type TrafficAnswer } from '../local/traffic.js';

const { values } = parseArgs({ options: { rps: { type: 'string', default: '50' }, 'phase-seconds': { type: 'string', default: '30' } } });
const RPS = Number(values.rps);
const PHASE_SECONDS = Number(values['phase-seconds']);
const SERVICE = 'chat';
/** Fixed latency, so what differs between phases is the path, not the model's own tail. */
const STABLE_KNOBS = { latency: { kind: 'fixed', ms: 20 }, tokens: { completion: 40 } };

interface Phase {
  name: string;
  shadowPercent: number;
  candidateKnobs: Record<string, unknown>;
}

const PHASES: Phase[] = [
  { name: 'off', shadowPercent: 0, candidateKnobs: STABLE_KNOBS },
  { name: 'shadow_20pct', shadowPercent: 20, candidateKnobs: STABLE_KNOBS },
  { name: 'shadow_100pct', shadowPercent: 100, candidateKnobs: STABLE_KNOBS },
  { name: 'off_again', shadowPercent: 0, candidateKnobs: STABLE_KNOBS },
  { name: 'shadow_100pct_candidate_hangs', shadowPercent: 100, candidateKnobs: { ...STABLE_KNOBS, latency: { kind: 'fixed', ms: 30_000 } } },
  { name: 'shadow_100pct_candidate_fails', shadowPercent: 100, candidateKnobs: { ...STABLE_KNOBS, errorRate: 1 } },
];

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** extproc's shadow counters: copies routed by status class, and captures by outcome. */
async function shadowCounters(adminPort: number): Promise<{ copies: number; dropped: number }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let copies = 0;
  let dropped = 0;
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('fledge_shadow_copy_requests_total{')) copies += value;
    if (line.startsWith('inference_shadow_captures_total{') && line.includes('outcome="dropped"') && line.includes('side="candidate"')) dropped += value;
  }
  return { copies, dropped };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-shadow-bench-'));
  const config = stackConfigSchema.parse({
    ports: await benchStackPorts(2),
    services: { [SERVICE]: { stable: 'v1', versions: { v1: { knobs: STABLE_KNOBS }, v2: { knobs: STABLE_KNOBS } } } },
    probes: { enabled: false },
  });
  const stack = new LocalStack(config, { stateDir: dir });
  const router = new LocalTrafficRouter({ trafficFile: stack.trafficFile, routingFile: stack.routingFile, envoyRoutes: stack.routes, extprocAdminUrl: `http://127.0.0.1:${config.ports.extprocAdmin}` }, SERVICE, 'v2');
  const candidatePort = config.ports.models + 1;
  const traffic = new TrafficGenerator({ port: config.ports.envoy, host: SERVICE, rps: RPS, users: demoUsers(), request: (i) => ({ kind: 'chat', body: { model: SERVICE, messages: [{ role: 'user', content: `question ${i % 200}` }] } }) });
  const loadAtStart = loadavg()[0]!;
  try {
    await stack.start(() => undefined);
    traffic.start();
    // Warm-up: the first requests of cold processes (JIT, connections) belong to no phase.
    await new Promise((r) => setTimeout(r, 5_000));
    const results: Record<string, unknown>[] = [];
    for (const phase of PHASES) {
      const knobs = await fetch(`http://127.0.0.1:${candidatePort}/admin/knobs`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(phase.candidateKnobs) });
      if (!knobs.ok) throw new Error(`setting the candidate's knobs for ${phase.name}: ${knobs.status} ${await knobs.text()}`);
      if (phase.shadowPercent > 0) await router.setMirror(phase.shadowPercent);
      else await router.retireCandidate();
      const before = await shadowCounters(config.ports.extprocAdmin);
      const from = Date.now();
      await new Promise((r) => setTimeout(r, PHASE_SECONDS * 1000));
      const to = Date.now();
      const after = await shadowCounters(config.ports.extprocAdmin);
      const answers = traffic.answers.filter((a: TrafficAnswer) => a.sentAt >= from && a.sentAt < to - 2_000);
      const latencies = answers.map((a) => a.at - a.sentAt).sort((a, b) => a - b);
      results.push({
        phase: phase.name,
        shadow_percent: phase.shadowPercent,
        answers: answers.length,
        p50_ms: round(quantile(latencies, 0.5)),
        p99_ms: round(quantile(latencies, 0.99)),
        max_ms: round(latencies.at(-1) ?? Number.NaN),
        failed: answers.filter((a) => a.status !== 200).length,
        not_from_stable: answers.filter((a) => a.status === 200 && a.servedBy !== 'v1').length,
        copies_routed: after.copies - before.copies,
        copies_dropped: after.dropped - before.dropped,
      });
      process.stderr.write(`${JSON.stringify(results.at(-1))}\n`);
    }
    const byName = new Map(results.map((r) => [r.phase as string, r]));
    const p99 = (name: string) => byName.get(name)!.p99_ms as number;
    const offP99 = Math.max(p99('off'), p99('off_again'));
    const result = {
      command: `node dist/bench/shadow-bench.js --rps ${RPS} --phase-seconds ${PHASE_SECONDS}`,
      measured_at: new Date().toISOString(),
      load_average_1m_at_start: round(loadAtStart),
      setup: `one service, stable v1 and candidate v2 (simulated, fixed 20 ms, 40 tokens), ${RPS} requests/s of 2,000 users (an open model), phases of ${PHASE_SECONDS} s in the order listed (the last 2 s of each left out: answers in flight across a switch); shadow set with LocalTrafficRouter.setMirror as the local controller does, so extproc sends the copies through the stack's Envoy; the hanging candidate answers after 30 s (copies time out at 60 s, at most 32 in flight, the rest dropped)`,
      phases: results,
      p99_delta_20pct_ms: round(p99('shadow_20pct') - offP99),
      p99_delta_100pct_ms: round(p99('shadow_100pct') - offP99),
      p99_delta_candidate_hangs_ms: round(p99('shadow_100pct_candidate_hangs') - offP99),
      p99_delta_candidate_fails_ms: round(p99('shadow_100pct_candidate_fails') - offP99),
      user_failures: results.reduce((n, r) => n + (r.failed as number), 0),
      user_answers_not_from_stable: results.reduce((n, r) => n + (r.not_from_stable as number), 0),
    };
    writeFileSync(packageFile('bench/results/shadow.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await traffic.stop();
    await stack.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`shadow bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
