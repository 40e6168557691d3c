/**
 * The evidence bench's detection figure, once on the real local stack (Envoy, extproc,
 * Prometheus, Redis, simulated models, the local controller): candidates 5 points worse on
 * hallucination than their stable (10% against 5% of golden answers wrong) go through
 * examples/policies/evidence.yaml verbatim (its 2-point margin, as the bench), and the
 * canary's judged answers at the look that rolled each back are recorded. Judged answers
 * are real: golden questions in user traffic and golden probes, checked by extproc against
 * the golden set, counted by Prometheus. Merges `end_to_end` into bench/results/evidence.json.
 *
 *   node dist/bench/evidence-end-to-end.js [--rollouts 3] [--time-scale 20]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { LocalStateStore } from '../controller/local/state-store.js';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { writeAtomically } from '../controller/local/traffic-state.js';
import { packageFile } from '../local/package-paths.js';
import { benchStackPorts } from './stack-ports.js';
import { DEMO_GOLDEN, demoGoldenFile, demoRequest, demoUsers } from '../local/rollout-demo-config.js';
import { stackConfigSchema } from '../local/stack-config.js';
import { LocalStack } from '../local/stack.js';
import { TrafficGenerator } from '../local/traffic.js';

const { values } = parseArgs({ options: { rollouts: { type: 'string', default: '3' }, 'time-scale': { type: 'string', default: '20' }, rps: { type: 'string', default: '20' }, 'probe-rate': { type: 'string', default: '5' } } });
const ROLLOUTS = Number(values.rollouts);
const TIME_SCALE = Number(values['time-scale']);
const RPS = Number(values.rps);
const PROBE_RATE = Number(values['probe-rate']);
const STABLE_RATE = 0.05;
const CANARY_RATE = 0.1;
const POLICY_FILE = packageFile('examples/policies/evidence.yaml');

const knobs = (hallucinationRate: number) => ({
  latency: { kind: 'lognormal', medianMs: 20, p95Ms: 60 },
  hallucinationRate,
  tokens: { completion: 32 },
  golden: DEMO_GOLDEN.map(({ prompt, answer, wrongAnswer }) => ({ prompt, answer, wrongAnswer })),
});

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-evidence-e2e-'));
  const goldenFile = join(dir, 'golden.yaml');
  writeFileSync(goldenFile, toYaml(demoGoldenFile()));
  const services = Array.from({ length: ROLLOUTS }, (_, i) => `svc${i + 1}`);
  const config = stackConfigSchema.parse({
    ports: await benchStackPorts(2 * ROLLOUTS),
    services: Object.fromEntries(services.map((s) => [s, { stable: 'v1', versions: { v1: { knobs: knobs(STABLE_RATE) }, v2: { knobs: knobs(CANARY_RATE) } } }])),
    probes: { goldenFile, rate: PROBE_RATE },
    extproc: { quality: { sampling: { defaultRate: 1 }, golden: { file: goldenFile, inspect: 'sampled' } } },
  });
  const rolloutsFile = join(dir, 'rollouts.yaml');
  writeAtomically(rolloutsFile, toYaml({ rollouts: [] }));
  const stack = new LocalStack(config, { stateDir: dir, controller: { rolloutsFile, timeScale: TIME_SCALE } });
  const traffic: TrafficGenerator[] = [];
  try {
    await stack.start(() => undefined);
    for (const service of services) {
      const t = new TrafficGenerator({ port: config.ports.envoy, host: service, rps: RPS, users: demoUsers(), request: demoRequest(service) });
      t.start();
      traffic.push(t);
    }
    // Let the stable series exist before the rollouts start (the comparisons need both arms).
    await new Promise((r) => setTimeout(r, 5_000));
    const started = Date.now();
    writeAtomically(rolloutsFile, toYaml({ policies: [POLICY_FILE], rollouts: services.map((service) => ({ name: `${service}-v2`, service, candidate: 'v2', stable: 'v1', policy: 'evidence' })) }));
    const store = new LocalStateStore(dir);
    const final = new Map<string, RolloutStatus>();
    const deadline = Date.now() + 240_000;
    while (final.size < services.length && Date.now() < deadline) {
      for (const service of services) {
        const stored = store.read(`${service}-v2`);
        if (stored.kind === 'ok' && stored.status.phase !== 'Progressing') final.set(service, stored.status);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const runs = services.map((service) => {
      const s = final.get(service);
      const hallucination = s?.evidence?.decisions.find((d) => d.metric === 'hallucination-rate');
      return {
        rollout: `${service}-v2`,
        phase: s?.phase ?? 'unsettled',
        weight_at_decision: s?.stepIndex === 1 ? 5 : s?.stepIndex === 4 ? 25 : s?.stepIndex === 7 ? 50 : null,
        detected: s?.phase === 'RolledBack' && hallucination?.verdict === 'worse',
        canary_samples: hallucination ? Math.round(hallucination.n.canary) : null,
        stable_samples: hallucination ? Math.round(hallucination.n.stable) : null,
        estimate: hallucination?.estimate ?? null,
        interval: hallucination?.interval ?? null,
        message: s?.message ?? 'did not settle within 240 s',
      };
    });
    const samples = runs.flatMap((r) => (r.detected && r.canary_samples !== null ? [r.canary_samples] : [])).sort((a, b) => a - b);
    const result = {
      command: `node dist/bench/evidence-end-to-end.js --rollouts ${ROLLOUTS} --time-scale ${TIME_SCALE} --rps ${RPS} --probe-rate ${PROBE_RATE}`,
      policy: 'examples/policies/evidence.yaml (hallucination margin 0.02, confidence 0.95)',
      stable_hallucination: STABLE_RATE,
      canary_hallucination: CANARY_RATE,
      detected: `${samples.length}/${runs.length}`,
      detect_samples_median: samples.length ? samples[Math.floor((samples.length - 1) / 2)]! : null,
      runs,
      wall_seconds_from_rollout_start: Math.round((Date.now() - started) / 1000),
    };
    const resultsFile = packageFile('bench/results/evidence.json');
    const existing = JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(resultsFile, `${JSON.stringify({ ...existing, end_to_end: result }, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const t of traffic) await t.stop();
    await stack.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`evidence end-to-end: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
