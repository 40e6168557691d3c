// Shadow mode on the real local stack (Envoy, extproc, Prometheus, Redis, golden probes,
// simulated models), under the built-in shadow-canary policy as a user runs it: its first stage
// copies 20% of the stable's requests to the candidate, extproc pairs the two answers in
// Redis, and shadow-check judges inference_shadow_* against the stable's own noise floor.
// A candidate identical to the stable passes and reaches the first canary weight; one that
// doubles its answers' length, fails every request, hangs, or answers golden questions
// wrongly is rolled back at weight 0 — no user ever got one of its answers. A second stack
// whose extproc cannot reach its pair store holds the rollout for review.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { LocalStateStore } from '../../controller/local/state-store.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import { ShadowPairLog } from '../../extproc/shadow/pair-log.js';
import type { ManagedProcess } from '../../local/child-process.js';
import { freePort } from '../../local/ports.js';
import { DEMO_GOLDEN, demoGoldenFile } from '../../local/rollout-demo-config.js';
import { stackConfigSchema, type StackPorts } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { startLocalController, waitForLocalStatus, waitForPrometheusUp } from '../harness/local-stack.js';
import { freeStackPorts } from '../harness/stack-ports.js';

// The 10m shadow step lasts 60 s and shadow-check looks every 6 s: ~3 pairs a second per
// service give its 50 with room to spare for a rollout whose stage starts late (the
// controller applies four rollouts' routes one at a time) on a machine shared with other tests.
const TIME_SCALE = 10;
const RPS = 15;
const golden = DEMO_GOLDEN.map(({ prompt, answer, wrongAnswer }) => ({ prompt, answer, wrongAnswer }));
const knobs = (over: Record<string, unknown> = {}) => ({ latency: { kind: 'fixed', ms: 5 }, tokens: { completion: 40 }, golden, ...over });

/** Every fourth request is a golden question, the rest ordinary chat. */
const request = (host: string) => (i: number) => {
  const entry = DEMO_GOLDEN[i % (4 * DEMO_GOLDEN.length)] ;
  const content = i % 4 === 0 && entry ? entry.prompt : `question ${i % 50}`;
  return { kind: 'chat', body: { model: host, messages: [{ role: 'user', content }] } };
};

interface Harness {
  dir: string;
  store: LocalStateStore;
  stack: LocalStack;
  ports: StackPorts;
  controller: ManagedProcess | undefined;
  traffic: Map<string, TrafficGenerator>;
}

/** `judge`: the LLM judge configured for extproc (its stack's Redis), so shadow pairs are offered to the pairwise judge too. */
async function startShadowStack(name: string, versions: Record<string, Record<string, unknown>>, extproc: Record<string, unknown> = {}, judge = false): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), `fledge-${name}-`));
  const stateDir = join(dir, '.fledge');
  const ports = await freeStackPorts(2 * Object.keys(versions).length);
  const goldenFile = join(dir, 'golden.json');
  writeFileSync(goldenFile, JSON.stringify(demoGoldenFile()));
  const config = stackConfigSchema.parse({
    ports,
    services: Object.fromEntries(Object.entries(versions).map(([service, v2]) => [service, { stable: 'v1', versions: { v1: { knobs: knobs() }, v2: { knobs: knobs(v2) } } }])),
    probes: { goldenFile, rate: 4 },
    extproc: { quality: { golden: { file: goldenFile }, probeRateWindowSeconds: 10, ...(judge ? { judge: { redisUrl: `redis://127.0.0.1:${ports.redis}` } } : {}) }, ...extproc },
  });
  const stack = new LocalStack(config, { stateDir });
  await stack.start(() => undefined);
  await waitForPrometheusUp(ports.prometheus);
  const traffic = new Map<string, TrafficGenerator>();
  for (const service of Object.keys(versions)) {
    const t = new TrafficGenerator({ port: ports.envoy, host: service, rps: RPS, users: Array.from({ length: 100 }, (_, i) => ({ id: `user-${i}` })), request: request(service) });
    t.start();
    traffic.set(service, t);
  }
  writeFileSync(join(dir, 'rollouts.yaml'), toYaml({ rollouts: Object.keys(versions).map((service) => ({ name: `${service}-v2`, service, candidate: 'v2', policy: 'shadow-canary' })) }));
  const controller = await startLocalController({ stateDir, rolloutsFile: join(dir, 'rollouts.yaml'), ports, timeScale: TIME_SCALE, logFile: join(dir, 'controller.log') });
  return { dir, store: new LocalStateStore(stateDir), stack, ports, controller, traffic };
}

async function stopShadowStack(h: Harness | undefined): Promise<void> {
  if (!h) return;
  for (const t of h.traffic.values()) await t.stop();
  await h.controller?.stop();
  await h.stack.stop();
  if (!process.env.FLEDGE_KEEP_TMP) rmSync(h.dir, { recursive: true, force: true });
}

const waitFor = (h: Harness, name: string, what: string, ok: (s: RolloutStatus) => boolean) =>
  waitForLocalStatus(h.store, name, what, ok, { timeoutMs: 180_000, ...(h.controller ? { controller: h.controller } : {}) });

const measured = (s: RolloutStatus, metric: string) => s.lastAnalysis?.metrics.find((m) => m.name === metric)?.measurements.at(-1);

describe('shadow mode, the shadow-canary policy on the real local stack', () => {
  let h: Harness;
  const started = Date.now();

  beforeAll(async () => {
    h = await startShadowStack('shadow', {
      same: {},
      long: { tokens: { completion: 80 } },
      broken: { errorRate: 1 },
      wrong: { hallucinationRate: 1 },
    }, {}, true);
  }, 120_000);

  afterAll(async () => stopShadowStack(h));

  it('an identical candidate passes the shadow stage on its pairs and goes on to 5%; its copies then stop', async () => {
    const s = await waitFor(h, 'same-v2', 'the first canary weight', (x) => x.weight >= 5 || x.phase !== 'Progressing');
    expect(s.phase, s.message).toBe('Progressing');
    expect(s.lastAnalysis?.phase).toBe('Successful');
    const ratio = measured(s, 'shadow-length-ratio');
    expect(ratio?.n).toBeGreaterThanOrEqual(50);
    expect(ratio?.value?.[0]).toBeGreaterThan(0.8);
    expect(ratio?.value?.[0]).toBeLessThanOrEqual(1.1);
    expect(measured(s, 'shadow-failures')?.value?.[0]).toBe(0);
    // The noise floor of a candidate identical to the stable: no difference beyond the stable's own.
    const redis = new Redis(`redis://127.0.0.1:${h.ports.redis}`);
    try {
      const log = new ShadowPairLog(redis);
      const [hash] = await log.rollouts('same');
      const { records } = await log.read('same', hash!);
      const noise = records.filter((r) => r.kind === 'noise');
      const candidate = records.filter((r) => r.kind === 'candidate');
      expect(noise.length).toBeGreaterThan(5);
      expect(candidate.length).toBeGreaterThanOrEqual(50);
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      expect(median(noise.map((r) => r.comparison.lengthRatio))).toBeCloseTo(1, 1);
      expect(median(candidate.map((r) => r.comparison.lengthRatio))).toBeCloseTo(1, 1);
      expect(candidate.filter((r) => r.comparison.failed || r.comparison.goldenCorrect === 'lost')).toEqual([]);
      // No text is kept: features only (the only strings are names, ids and the finish reason).
      const strings = (value: unknown): string[] => (typeof value === 'string' ? [value] : value && typeof value === 'object' ? Object.values(value).flatMap(strings) : []);
      for (const text of strings(records[0])) expect(text, JSON.stringify(records[0])).not.toMatch(/question|Paris|capital|\s/i);
      // With the LLM judge configured, completed pairs whose answers are whole go to the pairwise judge's stream, texts and prompt included, on a stream that expires.
      const offered = ((await redis.xrange('fledge:judge:pairs', '-', '+')) as [string, string[]][]).map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
      const same = offered.filter((e) => e.service === 'same');
      expect(same.length).toBeGreaterThan(0);
      for (const e of same) {
        expect(e).toMatchObject({ version: 'v2', rollout_hash: hash, pair: expect.stringMatching(/^(candidate|noise)$/) as string });
        expect(e.prompt).toMatch(/question|\?/);
        expect(e.stable!.length).toBeGreaterThan(0);
        expect(e.other!.length).toBeGreaterThan(0);
      }
      const ttl = await redis.ttl('fledge:judge:pairs');
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(600);
      // A candidate that fails every request has no whole answer to judge: only its noise pairs are offered.
      expect(offered.filter((e) => e.service === 'broken' && e.pair === 'candidate')).toEqual([]);
    } finally {
      redis.disconnect();
    }
  }, 200_000);

  for (const [service, metric] of [
    ['long', /shadow-length-ratio failed: value (1\.[6-9]|2)/],
    ['broken', /shadow-failures failed/],
    // Every golden probe answered wrongly: the guardrail takes the candidate off during the shadow step already.
    ['wrong', /(quality-score|shadow-golden-lost|shadow-guardrail) failed/],
  ] as const) {
    it(`${service}: the candidate fails the shadow stage and is rolled back at weight 0 (${metric.source})`, async () => {
      const s = await waitFor(h, `${service}-v2`, 'a verdict', (x) => x.phase !== 'Progressing');
      expect(s.phase, s.message).toBe('RolledBack');
      expect(s.message).toMatch(metric);
      expect(s.stepIndex).toBeLessThanOrEqual(1);
      expect(await h.stack.routes.canaryWeightInForce(service, 'v2')).toBe(0);
    }, 200_000);
  }

  it('no user ever got a candidate answer during shadow, and no user request failed', () => {
    for (const service of ['long', 'broken', 'wrong']) {
      const answers = h.traffic.get(service)!.answers.filter((a) => a.sentAt >= started);
      expect(answers.length).toBeGreaterThan(100);
      expect(answers.filter((a) => a.servedBy !== 'v1'), service).toEqual([]);
      expect(h.traffic.get(service)!.failures(), service).toEqual([]);
    }
    // The identical candidate's users: stable only until the 5% step.
    expect(h.traffic.get('same')!.failures()).toEqual([]);
  });
});

describe('shadow mode with its pair store unreachable', () => {
  let h: Harness | undefined;

  beforeAll(async () => {
    // Nothing listens there: extproc's shadow answers cannot be stored.
    h = await startShadowStack('shadow-noredis', { lonely: {} }, { shadow: { redisUrl: `redis://127.0.0.1:${await freePort()}` } });
  }, 120_000);

  afterAll(async () => stopShadowStack(h));

  it('holds the rollout for review at weight 0, naming the capture failures; users are unaffected', async () => {
    const s = await waitFor(h!, 'lonely-v2', 'a verdict', (x) => x.phase !== 'Progressing');
    expect(s.phase, s.message).toBe('AwaitingReview');
    expect(s.weight).toBe(0);
    expect(s.message).toMatch(/shadow-capture-failures failed: value 1\b/);
    const t = h!.traffic.get('lonely')!;
    expect(t.answers.length).toBeGreaterThan(100);
    expect(t.failures()).toEqual([]);
    expect(t.answers.filter((a) => a.servedBy !== 'v1')).toEqual([]);
  }, 200_000);
});
