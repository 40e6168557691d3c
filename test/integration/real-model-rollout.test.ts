// A real-model rollout end to end: `fledge demo --model smollm2 --json` runs the local stack
// (Redis, four processes of SmolLM2-135M behind `fledge model`, extproc, Envoy,
// Prometheus, the golden prober, the local controller) and two rollouts under the shipped
// example policy (examples/real-model/policy.yaml), which compares the candidate with the
// stable on golden probes: every number below is a golden check of an answer the model
// wrote. chat-v2 (a reworded, sane system prompt) is promoted; assistant-v2 (its default
// temperature set to 2: broken sampling, same weights) is rolled back.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI } from '../harness/dataplane.js';
import { freeStackPorts } from '../harness/stack-ports.js';

const run = promisify(execFile);
const MIN_SAMPLES = 15;
const MARGIN = 0.25;

interface Entry {
  metric: string;
  value: number | null;
  threshold: string;
  passed: boolean;
  n: number | null;
  stable?: number | null;
}
interface ModelDemoJson {
  versions: Record<string, string>;
  rollouts: { name: string; outcome: string; steps: string[]; analyses: Entry[]; background?: { phase: string; analyses: Entry[] }; breach?: { metric: string; value: number | null; threshold: string; n: number | null } }[];
}

describe('fledge demo --model smollm2 (real model)', () => {
  it('promotes the healthy configuration and rolls back the regressed one, judged by golden probes against the stable', async () => {
    const ports = await freeStackPorts(4);
    const args = [CLI, 'demo', '--model', 'smollm2', '--json', '--model-port', String(ports.models)];
    const flags = { envoy: '--envoy-port', envoyAdmin: '--envoy-admin-port', extproc: '--extproc-port', extprocAdmin: '--extproc-admin-port', controllerAdmin: '--controller-admin-port', prometheus: '--prometheus-port', redis: '--redis-port', prober: '--prober-port' } as const;
    for (const [key, flag] of Object.entries(flags)) args.push(flag, String(ports[key as keyof typeof flags]));
    const started = Date.now();
    // A rollout that ends otherwise than planned exits 1, still printing the summary: show it.
    const { stdout } = await run(process.execPath, args, { timeout: 570_000, maxBuffer: 16 * 1024 * 1024 }).catch((err: { stdout?: string; message: string }) => {
      throw new Error(`${err.message}\nsummary: ${err.stdout ?? ''}`);
    });
    const summary = JSON.parse(stdout) as ModelDemoJson;
    // The figures behind the decisions, for the record (docs/quality.md quotes them).
    console.log(`real-model rollout in ${Math.round((Date.now() - started) / 1000)} s:`, JSON.stringify(summary.rollouts.map((r) => ({ name: r.name, outcome: r.outcome, analyses: r.analyses, background: r.background?.analyses, breach: r.breach }))));
    expect(summary.rollouts.map((r) => r.name)).toEqual(['chat-v2', 'assistant-v2']);
    const [healthy, regressed] = summary.rollouts as [ModelDemoJson['rollouts'][number], ModelDemoJson['rollouts'][number]];

    // Promoted by the step analysis: both metrics passed on at least MIN_SAMPLES probe answers,
    // the stable measured at the same time, the candidate within the margin of it.
    expect(healthy.outcome).toBe('promoted');
    const judged = healthy.analyses.filter((a) => a.metric === 'quality-score' || a.metric === 'hallucination-rate');
    expect(judged.map((a) => a.metric).sort()).toEqual(['hallucination-rate', 'quality-score']);
    for (const a of judged) {
      expect(a.passed).toBe(true);
      expect(a.n).toBeGreaterThanOrEqual(MIN_SAMPLES);
      expect(a.value).not.toBeNull();
      expect(a.stable).not.toBeNull();
    }
    const quality = judged.find((a) => a.metric === 'quality-score')!;
    const hallucination = judged.find((a) => a.metric === 'hallucination-rate')!;
    expect(quality.value!).toBeGreaterThanOrEqual(quality.stable! - MARGIN);
    // A 135M model gets some general-knowledge questions wrong even in its good configuration:
    // the reason the policy compares with the stable instead of the seed's absolute 5%.
    expect(hallucination.stable!).toBeGreaterThan(0.05);
    expect(quality.stable!).toBeGreaterThan(0.5);

    // Rolled back on a measured breach: the failing metric's value is beyond the stable's by
    // more than the margin, on at least MIN_SAMPLES probe answers of the candidate.
    expect(regressed.outcome).toBe('rolled-back');
    expect(regressed.breach).toBeDefined();
    const breach = regressed.breach!;
    expect(['quality-score', 'hallucination-rate']).toContain(breach.metric);
    expect(breach.n).toBeGreaterThanOrEqual(MIN_SAMPLES);
    const failed = [...regressed.analyses, ...(regressed.background?.analyses ?? [])].find((a) => a.metric === breach.metric && !a.passed)!;
    expect(failed.stable).not.toBeNull();
    if (breach.metric === 'quality-score') expect(breach.value!).toBeLessThan(failed.stable! - MARGIN);
    else expect(breach.value!).toBeGreaterThan(failed.stable! + MARGIN);
    expect(summary.versions['assistant/v2']).toContain('temperature 2');
  }, 600_000);
});
