// `fledge demo --json` end to end on the real local stack (Envoy, extproc, Prometheus, Redis,
// sims, the local controller): a healthy candidate promoted through stages that end on their
// evidence, a hallucinating one rolled back (half its golden answers are wrong: the data-plane
// guardrail, the background analysis or the stage's comparison with the stable, whichever
// acts first).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freeStackPorts } from '../harness/stack-ports.js';
import { CLI } from '../harness/dataplane.js';

const run = promisify(execFile);
const METRICS = ['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'cost-per-request'];
const SHADOW_METRICS = ['shadow-capture-failures', 'shadow-failures', 'shadow-golden-lost', 'shadow-length-ratio', 'quality-score', 'shadow-guardrail'];

interface DemoJson {
  rollouts: {
    name: string;
    outcome: string;
    steps: string[];
    analyses: { metric: string; value: number | null; threshold: string; passed: boolean; n: number | null }[];
    background?: { phase: string; analyses: { metric: string; value: number | null; threshold: string; passed: boolean; n: number | null }[] };
    breach?: { metric: string; value: number | null; threshold: string; n: number | null };
    evidence: { weight: number; outcome: string; seconds: number; looks: number; decisions: { metric: string; verdict: string; estimate: number | null; interval: [number | null, number | null]; n: { canary: number | null; stable: number | null } }[] }[];
    rollbackSeconds?: number;
    failedRequests: number;
  }[];
}

describe('fledge demo (rollouts)', () => {
  it('promotes the healthy candidate and rolls back the hallucinating one, without a failed request', async () => {
    // The four models take consecutive ports; the other components one each outside that run.
    const ports = await freeStackPorts(4);
    const args = [CLI, 'demo', '--json', '--model-port', String(ports.models)];
    const flags = { envoy: '--envoy-port', envoyAdmin: '--envoy-admin-port', extproc: '--extproc-port', extprocAdmin: '--extproc-admin-port', controllerAdmin: '--controller-admin-port', prometheus: '--prometheus-port', redis: '--redis-port', prober: '--prober-port' } as const;
    for (const [key, flag] of Object.entries(flags)) args.push(flag, String(ports[key as keyof typeof flags]));
    const started = Date.now();
    const { stdout } = await run(process.execPath, args, { timeout: 330_000, maxBuffer: 16 * 1024 * 1024 });
    const seconds = (Date.now() - started) / 1000;
    const summary = JSON.parse(stdout) as DemoJson;
    expect(summary.rollouts.map((r) => r.name)).toEqual(['chat-v2', 'assistant-v2']);
    const [chat, assistant] = summary.rollouts as [DemoJson['rollouts'][number], DemoJson['rollouts'][number]];

    expect(chat.outcome).toBe('promoted');
    expect(chat.steps.at(-1)).toMatch(/^promoted/);
    expect(chat.steps).toContain('setWeight 100');
    // The shadow stage comes first: the candidate answers copies before any user is served by it.
    expect(chat.steps.slice(0, 3)).toEqual(['shadow 20% for 10m', 'analysis shadow-check: Successful', 'setWeight 5']);
    // The shadow check, then three analyses of five metrics, all passed.
    expect(chat.analyses).toHaveLength(SHADOW_METRICS.length + 3 * METRICS.length);
    expect(chat.analyses.every((a) => a.passed)).toBe(true);
    expect(chat.breach).toBeUndefined();
    expect(chat.rollbackSeconds).toBeUndefined();
    // Each stage ended on its evidence: the hallucination comparison not worse, from real counts of at least the minimum per arm.
    expect(chat.evidence.map((s) => [s.weight, s.outcome])).toEqual([[5, 'not-worse'], [25, 'not-worse'], [50, 'not-worse']]);
    for (const stage of chat.evidence) {
      expect(stage.decisions.map((d) => d.metric)).toEqual(['hallucination-rate']);
      for (const d of stage.decisions) {
        expect(d.verdict).toBe('not-worse');
        expect(d.n.canary).toBeGreaterThanOrEqual(50);
        expect(d.n.stable).toBeGreaterThanOrEqual(50);
        expect(d.interval[0]!).toBeLessThanOrEqual(d.estimate!);
        expect(d.interval[1]!).toBeGreaterThanOrEqual(d.estimate!);
      }
    }

    expect(assistant.outcome).toBe('rolled-back');
    // Half the candidate's golden answers wrong is a hard breach: extproc's guardrail takes the
    // canary off and the background analysis rolls it back, on the guardrail's trip or on the
    // quality metrics that measure the same wrong answers, whichever of its looks comes first.
    const breach = assistant.breach!;
    expect(['guardrail', 'quality-score', 'hallucination-rate']).toContain(breach.metric);
    if (breach.metric === 'guardrail') expect([breach.value, breach.threshold]).toEqual([1, 'result[0] < 1']);
    else expect(breach.n).toBeGreaterThanOrEqual(50);
    expect(assistant.steps).not.toContain('setWeight 50');
    // Caught during the 15m stage at 25%, before that stage's own analysis: the step analyses
    // that ran all passed, and the 5% stage ended on its evidence.
    expect(assistant.steps.at(-2)).toBe('pause 15m');
    expect(assistant.analyses.every((a) => a.passed)).toBe(true);
    expect(assistant.evidence[0]).toMatchObject({ weight: 5, outcome: 'not-worse' });
    if (breach.threshold.startsWith('compare: stable')) {
      // By the stage's comparison with the stable: worse, its interval above zero.
      expect(assistant.evidence.at(-1)).toMatchObject({ weight: 25, outcome: 'worse' });
      expect(assistant.evidence.at(-1)!.decisions.find((d) => d.metric === breach.metric)!.interval[0]).toBeGreaterThan(0);
    } else {
      expect(assistant.background?.phase).toBe('Failed');
      expect(assistant.background?.analyses.filter((a) => !a.passed).map((a) => a.metric)).toContain(breach.metric);
    }
    expect(chat.background?.analyses.map((a) => a.metric)).toEqual(['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'guardrail']);
    expect(chat.background?.analyses.every((a) => a.passed)).toBe(true);
    expect(typeof assistant.rollbackSeconds).toBe('number');
    expect(assistant.rollbackSeconds).toBeGreaterThan(0);

    expect(assistant.steps.slice(0, 2)).toEqual(['shadow 20% for 10m', 'analysis shadow-check: Successful']);
    for (const r of summary.rollouts) {
      expect(new Set(r.analyses.map((a) => a.metric))).toEqual(new Set([...SHADOW_METRICS, ...METRICS]));
      for (const a of r.analyses) {
        // The stable's value comes along exactly when the condition compares with it.
        const comparesWithStable = a.threshold.includes('stable[0]');
        expect(Object.keys(a).sort()).toEqual(['metric', 'n', 'passed', ...(comparesWithStable ? ['stable'] : []), 'threshold', 'value']);
        if (comparesWithStable) expect(typeof (a as { stable?: unknown }).stable).toBe('number');
        // n: the evaluated samples behind the value, at least the policy's minimum for every measurement that passed.
        // (shadow-guardrail is the guardrail's own verdict: no samples of its own.)
        if (a.passed && a.metric !== 'shadow-guardrail') expect(a.n).toBeGreaterThanOrEqual(50);
        expect(typeof a.value).toBe('number');
        expect(a.threshold).toMatch(/result\[0\]/);
        expect(typeof a.passed).toBe('boolean');
      }
      expect(r.failedRequests, r.name).toBe(0);
    }
    // The demo's promise: at most 5 minutes after set-up (the stack's start included here).
    expect(seconds).toBeLessThan(300);
  }, 360_000);
});
