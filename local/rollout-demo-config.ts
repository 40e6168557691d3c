/**
 * What the rollout demo runs: two services, each with a stable v1 and a candidate v2
 * simulated model, the users and requests of its traffic, and the compressed time scale.
 */
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
  { name: 'assistant-v2', service: 'assistant', stable: 'v1', candidate: 'v2', fault: { atWeight: 25, knobs: { hallucinationRate: 0.3 } }, expected: 'rolled-back' },
];

export const GOLDEN = { prompt: 'What is the capital of France?', answer: 'Paris.' };

const healthyKnobs = (medianMs: number) => ({
  latency: { kind: 'lognormal', medianMs, p95Ms: medianMs * 3 },
  qualityHeaders: true,
  qualityScore: 0.93,
  hallucinationRate: 0,
  tokens: { completion: 48 },
  golden: [GOLDEN],
});

/** The stack: both services, every response sampled for quality, prices for the cost metric. */
export function demoStackConfig(ports: StackPorts): StackConfig {
  const service = { stable: 'v1', versions: { v1: { knobs: healthyKnobs(30) }, v2: { knobs: healthyKnobs(25) } } };
  return stackConfigSchema.parse({
    ports,
    services: Object.fromEntries(DEMO_ROLLOUTS.map((r) => [r.service, service])),
    extproc: {
      quality: {
        sampling: { defaultRate: 1 },
        prices: { v1: { inputPerMillion: 0.5, outputPerMillion: 1.5 }, v2: { inputPerMillion: 0.5, outputPerMillion: 1.5 } },
      },
    },
  });
}

/** The rollouts file's content once traffic flows: both rollouts under the built-in default policy. */
export function demoRolloutsFile(): { rollouts: { name: string; service: string; candidate: string; stable: string; policy: string }[] } {
  return { rollouts: DEMO_ROLLOUTS.map((r) => ({ name: r.name, service: r.service, candidate: r.candidate, stable: r.stable, policy: 'default' })) };
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
    const content = golden ? GOLDEN.prompt : `question ${i % 97} for ${service}`;
    const body: Record<string, unknown> = { model: service, messages: [{ role: 'user', content }], max_tokens: 64 };
    if (stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
    return { kind: golden ? 'golden' : stream ? 'stream' : 'chat', body };
  };
}
