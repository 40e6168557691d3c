/**
 * What the rollout demo runs: two services, each with a stable v1 and a candidate v2
 * simulated model, the users and requests of its traffic, and the compressed time scale.
 */
import { SHADOW_POLICY_NAME } from '../controller/policy/default-policy.js';
import { stackConfigSchema, type StackConfig, type StackPorts } from './stack-config.js';
import type { TrafficRequest, TrafficUser } from './traffic.js';

/**
 * The default policy's pauses are 10m, 15m and 15m; at 30× they last 20 s, 30 s and 30 s,
 * so a promotion takes about 80 s. Prometheus query windows stay 10m (real time), which
 * then hold the whole rollout's canary traffic.
 */
export const DEFAULT_TIME_SCALE = 30;
/**
 * Requests per second per service. The default policy needs 50 canary requests in the
 * window before an analysis can pass: at 5% weight for 20 s that is ~100 at 100 rps.
 */
export const DEFAULT_RPS = 100;

export interface DemoRolloutPlan {
  name: string;
  service: string;
  stable: string;
  candidate: string;
  /** Set on the candidate's sim (PATCH /admin/knobs) when the rollout's weight reaches `atWeight`. */
  fault?: { atWeight: number; knobs: Record<string, unknown> };
  expected: 'promoted' | 'rolled-back';
}

export const DEMO_ROLLOUTS: readonly DemoRolloutPlan[] = [
  { name: 'chat-v2', service: 'chat', stable: 'v1', candidate: 'v2', expected: 'promoted' },
  // The sim answers half the golden questions wrongly: wrong answer text, which the golden set
  // catches. A hard breach (the default guardrail's limit is 20%), so extproc takes the canary
  // off within seconds and the controller rolls back on the guardrail's trip; a softer fault
  // (15%) is caught by the background analysis instead, about 20 s after it starts at 30×.
  { name: 'assistant-v2', service: 'assistant', stable: 'v1', candidate: 'v2', fault: { atWeight: 25, knobs: { hallucinationRate: 0.5 } }, expected: 'rolled-back' },
];

/**
 * The demo's golden questions: the golden set extproc and the prober use (written to the
 * state dir), and what the simulated models answer to them (right, or at the
 * hallucination knob's rate, wrong). Every quality number in the demo is these answers'
 * text checked against the set; no model reports on itself.
 */
export const DEMO_GOLDEN = [
  { id: 'capital-france', prompt: 'What is the capital of France?', answer: 'The capital of France is Paris.', wrongAnswer: 'The capital of France is Lyon.', expect: { facts: ['Paris'] } },
  { id: 'largest-planet', prompt: 'Which planet is the largest in our solar system?', answer: 'Jupiter is the largest planet.', wrongAnswer: 'Neptune is the largest planet.', expect: { facts: ['Jupiter'] } },
  { id: 'boiling-point', prompt: 'At how many degrees Celsius does water boil at sea level?', answer: 'Water boils at 100 °C at sea level.', wrongAnswer: 'Water boils at 90 °C at sea level.', expect: { number: { value: 100, tolerance: 0 } } },
  { id: 'ww2-end', prompt: 'In which year did the Second World War end?', answer: 'It ended in 1945.', wrongAnswer: 'It ended in 1949.', expect: { regex: '\\b1945\\b' } },
  { id: 'water', prompt: 'What is the chemical formula of water?', answer: 'Water is H2O.', wrongAnswer: 'Water is CO2.', expect: { anyOf: ['H2O', 'H₂O'] } },
] as const;

/** The golden file's content (docs/quality.md format). */
export function demoGoldenFile(): { entries: { id: string; prompt: string; expect: unknown }[] } {
  return { entries: DEMO_GOLDEN.map(({ id, prompt, expect }) => ({ id, prompt, expect })) };
}

/**
 * Probes per second per version. The default policy's stages end when the canary's judged
 * answers show it within 3 points of the stable's hallucination rate: ~250 answers when
 * neither hallucinates. Probes reach every version at this rate whatever its weight, so at
 * 15/s (plus the golden tenth of its traffic) the 5% stage has them in ~16 s of its 20 s.
 */
export const DEMO_PROBE_RATE = 15;

const healthyKnobs = (medianMs: number) => ({
  latency: { kind: 'lognormal', medianMs, p95Ms: medianMs * 3 },
  hallucinationRate: 0,
  tokens: { completion: 48 },
  golden: DEMO_GOLDEN.map(({ prompt, answer, wrongAnswer }) => ({ prompt, answer, wrongAnswer })),
});

/** The stack: both services, every response sampled, golden probes, prices for the cost metric. */
export function demoStackConfig(ports: StackPorts, goldenFile: string): StackConfig {
  const service = { stable: 'v1', versions: { v1: { knobs: healthyKnobs(30) }, v2: { knobs: healthyKnobs(25) } } };
  return stackConfigSchema.parse({
    ports,
    services: Object.fromEntries(DEMO_ROLLOUTS.map((r) => [r.service, service])),
    probes: { goldenFile, rate: DEMO_PROBE_RATE },
    extproc: {
      quality: {
        sampling: { defaultRate: 1 },
        golden: { file: goldenFile, inspect: 'sampled' },
        // Time runs 30× faster in the demo: the probes' hallucination rate follows a fault within seconds.
        probeRateWindowSeconds: 10,
        prices: { v1: { inputPerMillion: 0.5, outputPerMillion: 1.5 }, v2: { inputPerMillion: 0.5, outputPerMillion: 1.5 } },
      },
    },
  });
}

/** The rollouts file's content once traffic flows: both rollouts under the built-in shadow-canary policy (shadow, then the default policy). */
export function demoRolloutsFile(): { rollouts: { name: string; service: string; candidate: string; stable: string; policy: string }[] } {
  return { rollouts: DEMO_ROLLOUTS.map((r) => ({ name: r.name, service: r.service, candidate: r.candidate, stable: r.stable, policy: SHADOW_POLICY_NAME })) };
}

/** 2000 users: 5% internal, 20% beta, the rest free. */
export function demoUsers(): TrafficUser[] {
  return Array.from({ length: 2000 }, (_, i) => ({ id: `user-${i}`, segment: i % 20 === 0 ? 'internal' : i % 5 === 1 ? 'beta' : 'free' }));
}

/** Every 10th request a golden question, every 3rd streamed, the rest plain chat. */
export function demoRequest(service: string): (i: number) => TrafficRequest {
  return (i) => {
    const stream = i % 3 === 0;
    const golden = i % 10 === 0;
    const content = golden ? DEMO_GOLDEN[(i / 10) % DEMO_GOLDEN.length]!.prompt : `question ${i % 97} for ${service}`;
    const body: Record<string, unknown> = { model: service, messages: [{ role: 'user', content }], max_tokens: 64 };
    if (stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
    return { kind: golden ? 'golden' : stream ? 'stream' : 'chat', body };
  };
}
