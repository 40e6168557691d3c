import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type ManagedProcess } from '../../local/child-process.js';
import { freePort } from '../../local/ports.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { signProbe } from '../../extproc/probes/probe-token.js';
import { stickyBucket } from '../../extproc/sticky.js';
import { CLI, DataPlane, metricValue } from '../harness/dataplane.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { PROBE_TEST_GOLDEN_FILE, PROBE_TEST_QA } from '../harness/golden-answers.js';

/**
 * Golden probes end to end: `fledge probe` signs golden prompts for each version, a real
 * Envoy routes them through a real extproc to the simulated models, extproc scores the
 * answer text against the golden set, and a real Prometheus answers the seed's quality and
 * hallucination queries with the probes' figures, while user traffic runs alongside and
 * its series never see a probe.
 */
const GOLDEN_FILE = PROBE_TEST_GOLDEN_FILE;
const QA = PROBE_TEST_QA;
const CANARY_WRONG = 0.4;
const PROBES_PER_VERSION = 150;

describe('golden probes through Envoy, extproc and Prometheus', () => {
  const secret = randomBytes(32).toString('hex');
  const dp = new DataPlane();
  let prom: RunningPrometheus;
  let prober: ManagedProcess;
  let users: TrafficGenerator;

  beforeAll(async () => {
    const secretFile = join(dp.dir, 'probe-secret');
    writeFileSync(secretFile, secret, { mode: 0o600 });
    await dp.start([{ name: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: 'hash-v1', v2: 'hash-v2' } }], undefined, {
      knobs: {
        'chat/v1': { latency: { kind: 'fixed', ms: 2 }, golden: QA, hallucinationRate: 0 },
        'chat/v2': { latency: { kind: 'fixed', ms: 2 }, golden: QA, hallucinationRate: CANARY_WRONG, seed: 7 },
      },
      // User answers are not sampled at all: every quality figure below comes from the probes.
      extprocConfig: { quality: { sampling: { defaultRate: 0 }, golden: { file: GOLDEN_FILE, inspect: 'sampled' } }, probes: { secretFile } },
    });
    prom = await startPrometheus([`127.0.0.1:${dp.adminPort}`]);
  }, 120_000);

  afterAll(async () => {
    await users?.stop();
    await prober?.stop();
    await prom?.stop();
    await dp.stop();
  });

  it('refuses a forged or replayed probe header: the request is routed and counted as a user request', async () => {
    // A user whose sticky bucket is stable at weight 50, so only a probe pin could send it to v2.
    const user = Array.from({ length: 1000 }, (_, i) => `u${i}`).find((u) => stickyBucket('chat', u) >= 5000)!;
    const forged = `v2.${Math.floor(Date.now() / 1000) + 20}.${'ab'.repeat(12)}.${'0'.repeat(64)}`;
    const forgedAnswer = await dp.request({ host: 'chat', user, headers: { 'x-fledge-probe': forged } });
    expect(forgedAnswer.servedBy).toBe('v1');
    expect(forgedAnswer.headers['x-fledge-reason']).toBe('sticky');

    const genuine = signProbe(secret, 'chat', 'v2', Date.now());
    const first = await dp.request({ host: 'chat', user, headers: { 'x-fledge-probe': genuine } });
    expect(first.servedBy).toBe('v2');
    expect(first.headers['x-fledge-reason']).toBe('probe');
    const replayed = await dp.request({ host: 'chat', user, headers: { 'x-fledge-probe': genuine } });
    expect(replayed.servedBy).toBe('v1');

    // Signed for another service: not valid for this one.
    const elsewhere = await dp.request({ host: 'chat', user, headers: { 'x-fledge-probe': signProbe(secret, 'search', 'v2', Date.now()) } });
    expect(elsewhere.servedBy).toBe('v1');

    const metrics = await dp.metricsText();
    expect(metricValue(metrics, 'fledge_probe_rejected_total', { reason: 'bad-mac' })).toBe(2);
    expect(metricValue(metrics, 'fledge_probe_rejected_total', { reason: 'replayed' })).toBe(1);
    expect(metricValue(metrics, 'inference_requests_total', { version: 'v1' })).toBe(3);
    expect(metricValue(metrics, 'inference_requests_total', { version: 'v2' })).toBe(0);
    expect(metricValue(metrics, 'fledge_probe_requests_total', { version: 'v2' })).toBe(1);
  });

  it('measures each version\'s golden accuracy from its answers, and the seed queries return the probe figures', async () => {
    const before = await dp.metricsText();
    const userRequestsBefore = metricValue(before, 'inference_requests_total', {});
    prober = startProcess('prober', process.execPath, [
      CLI, 'probe',
      '--routing-file', dp.routingFile,
      '--golden-file', GOLDEN_FILE,
      '--url', `http://127.0.0.1:${dp.listenPort}`,
      '--rate', '25',
      '--secret-file', join(dp.dir, 'probe-secret'),
      '--admin-port', String(await freePort()),
    ], join(dp.dir, 'prober.log'));
    // Readiness: extproc has scored enough probes of each version (first a few, then users join, then many).
    const evaluated = (text: string, version: string) => metricValue(text, 'fledge_quality_evaluated_total', { version, evaluator: 'golden-probe' });
    const deadline = Date.now() + 90_000;
    let text = await dp.metricsText();
    while (evaluated(text, 'v1') < 20 || evaluated(text, 'v2') < 20) {
      if (Date.now() > deadline) throw new Error(`probes not evaluated in time: ${evaluated(text, 'v1')} / ${evaluated(text, 'v2')}\n${prober.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
      text = await dp.metricsText();
    }
    // User traffic once the probes are flowing: each user request carries the probes' current rate.
    users = new TrafficGenerator({
      port: dp.listenPort,
      host: 'chat',
      rps: 60,
      users: Array.from({ length: 500 }, (_, i) => ({ id: `user-${i}` })),
      request: (i) => ({ kind: 'chat', body: { model: 'chat', messages: [{ role: 'user', content: `question ${i}` }] } }),
    });
    users.start();

    while (evaluated(text, 'v1') < PROBES_PER_VERSION || evaluated(text, 'v2') < PROBES_PER_VERSION) {
      if (Date.now() > deadline) throw new Error(`probes not evaluated in time: ${evaluated(text, 'v1')} / ${evaluated(text, 'v2')}\n${prober.logTail()}`);
      await new Promise((r) => setTimeout(r, 250));
      text = await dp.metricsText();
    }
    await users.stop();

    // Probe traffic is not user traffic: with the users gone, probes go on and the user series stand still.
    const quiet = await dp.metricsText();
    const more = (t: string) => Math.min(evaluated(t, 'v1') - evaluated(quiet, 'v1'), evaluated(t, 'v2') - evaluated(quiet, 'v2'));
    text = quiet;
    while (more(text) < 50) {
      if (Date.now() > deadline + 30_000) throw new Error(`probes stopped being evaluated\n${prober.logTail()}`);
      await new Promise((r) => setTimeout(r, 250));
      text = await dp.metricsText();
    }
    await prober.stop();
    text = await dp.metricsText();
    for (const series of ['inference_requests_total', 'inference_errors_total', 'inference_latency_seconds_count', 'inference_latency_seconds_sum']) {
      expect(metricValue(text, series, {}), series).toBe(metricValue(quiet, series, {}));
    }
    expect(metricValue(text, 'fledge_probe_requests_total', { code: '2xx' }) - metricValue(quiet, 'fledge_probe_requests_total', { code: '2xx' })).toBeGreaterThanOrEqual(100);
    expect(metricValue(text, 'inference_requests_total', {}) - userRequestsBefore).toBeGreaterThan(100);
    // Probes are parsed (their usage is there to read), yet no token or cost reaches the user series.
    expect(metricValue(text, 'inference_tokens_total', {})).toBe(0);
    expect(metricValue(text, 'inference_cost_total', {})).toBe(0);

    // Per-version accuracy, from the answer text: v1 always right, v2 wrong at the sim's rate.
    const rate = (version: string) => metricValue(text, 'fledge_quality_hallucination_verdicts_total', { version, evaluator: 'golden-probe' }) / evaluated(text, version);
    expect(rate('v1')).toBe(0);
    expect(rate('v2')).toBeGreaterThan(CANARY_WRONG - 0.15);
    expect(rate('v2')).toBeLessThan(CANARY_WRONG + 0.15);

    // The seed's queries, verbatim in shape, through Prometheus.
    const scraped = metricValue(text, 'fledge_quality_evaluated_total', { version: 'v2', evaluator: 'golden-probe' });
    await waitForScrape(prom, `sum(fledge_quality_evaluated_total{rollout_hash="hash-v2",evaluator="golden-probe"})`, scraped);
    const [quality] = await prom.query('avg(inference_quality_score{rollout_hash="hash-v2"})');
    expect(quality).toBeCloseTo(1 - rate('v2'), 6);
    const [stableQuality] = await prom.query('avg(inference_quality_score{rollout_hash="hash-v1"})');
    expect(stableQuality).toBe(1);
    const hallucination = (hash: string) => `sum(rate(inference_hallucination_total{rollout_hash="${hash}"}[10m])) / sum(rate(inference_requests_total{rollout_hash="${hash}"}[10m]))`;
    const [canaryRate] = await prom.query(hallucination('hash-v2'));
    // A request-weighted estimate of the probes' rate: close to it, not equal.
    const detail = `seed ratio ${canaryRate}, probe rate ${rate('v2')}, extproc's counters ${metricValue(text, 'inference_hallucination_total', { version: 'v2' })} / ${metricValue(text, 'inference_requests_total', { version: 'v2' })}`;
    expect(canaryRate, detail).toBeGreaterThan(rate('v2') - 0.15);
    expect(canaryRate, detail).toBeLessThan(rate('v2') + 0.15);
    expect(await prom.query(hallucination('hash-v1'))).toEqual([0]);
  }, 150_000);
});

async function waitForScrape(prom: RunningPrometheus, query: string, atLeast: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [value] = await prom.query(query);
    if (value !== undefined && value >= atLeast) return;
    if (Date.now() > deadline) throw new Error(`Prometheus did not scrape ${query} >= ${atLeast} in 20 s (got ${value})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
