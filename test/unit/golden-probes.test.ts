import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { probeVersion } from '../../extproc/probes/probe-routing.js';
import { ProbeVerifier, parseProbeHeader, signProbe } from '../../extproc/probes/probe-token.js';
import { loadProbeSecret } from '../../extproc/probes/secret.js';
import { entriesFor, probeTargets } from '../../extproc/prober/prober.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { GoldenSet, checkGoldenAnswer, numbersIn } from '../../extproc/quality/evaluators/golden-set.js';
import { QualityMetrics } from '../../extproc/quality/metrics.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { EVALUATORS } from '../../extproc/quality/pipeline.js';
import { ProbeRates } from '../../extproc/quality/probe-rates.js';
import { SampleRecorder, type FinishedSample } from '../../extproc/quality/recorder.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';

const SECRET = 'a'.repeat(64);
const T0 = 1_800_000_000_000;
const state: ServiceRouting = { service: 'chat', stable: 'v1.2', canary: 'v1.3', canaryWeight: 5, killed: false, rolloutHashes: {} };

describe('probe tokens', () => {
  it('verifies a signed probe once, for its service, before it expires', () => {
    const header = signProbe(SECRET, 'chat', 'v1.3', T0);
    expect(parseProbeHeader(header)?.version).toBe('v1.3'); // a version with a dot survives the split
    const verifier = new ProbeVerifier(SECRET, () => T0);
    expect(verifier.verify('other', header)).toEqual({ ok: false, why: 'bad-mac' });
    expect(verifier.verify('chat', header)).toEqual({ ok: true, version: 'v1.3' });
    expect(verifier.verify('chat', header)).toEqual({ ok: false, why: 'replayed' });
    expect(new ProbeVerifier(SECRET, () => T0 + 31_000).verify('chat', header)).toEqual({ ok: false, why: 'expired' });
    expect(new ProbeVerifier('b'.repeat(64), () => T0).verify('chat', header)).toEqual({ ok: false, why: 'bad-mac' });
  });

  it('refuses forged, edited and malformed headers', () => {
    const verifier = new ProbeVerifier(SECRET, () => T0);
    const header = signProbe(SECRET, 'chat', 'v1.2', T0);
    const edited = header.replace(/^v1\.2/, 'v1.3');
    expect(verifier.verify('chat', edited)).toEqual({ ok: false, why: 'bad-mac' });
    expect(verifier.verify('chat', 'v1.3')).toEqual({ ok: false, why: 'malformed' });
    expect(verifier.verify('chat', `v1.3.${Math.floor(T0 / 1000) + 10}.${'0'.repeat(24)}.${'f'.repeat(64)}`)).toEqual({ ok: false, why: 'bad-mac' });
  });

  it('pins only versions that may serve; anything else is a user request', () => {
    const rejected: string[] = [];
    const pin = (s: ServiceRouting, version: string, verifier = new ProbeVerifier(SECRET, () => T0)) =>
      probeVersion(s, false, signProbe(SECRET, 'chat', version, T0), verifier, (why) => rejected.push(why));
    expect(pin(state, 'v1.3')).toBe('v1.3');
    expect(pin(state, 'v1.2')).toBe('v1.2');
    expect(pin(state, 'v9')).toBeUndefined();
    expect(pin({ ...state, killed: true }, 'v1.3')).toBeUndefined();
    expect(pin({ ...state, canary: undefined }, 'v1.3')).toBeUndefined();
    expect(rejected).toEqual(['not-serving', 'not-serving', 'not-serving']);
    expect(probeVersion(state, false, signProbe(SECRET, 'chat', 'v1.3', T0), undefined, () => undefined)).toBeUndefined(); // probes off
    expect(probeVersion(state, true, signProbe(SECRET, 'chat', 'v1.3', T0), new ProbeVerifier(SECRET, () => T0), () => undefined)).toBeUndefined(); // a mirrored copy
  });

  it('loads the secret from a variable, and refuses a short one', () => {
    expect(loadProbeSecret({ secretEnv: 'S' }, {})).toBeUndefined();
    expect(loadProbeSecret({ secretEnv: 'S' }, { S: ` ${SECRET}\n` })).toBe(SECRET);
    expect(() => loadProbeSecret({ secretEnv: 'S' }, { S: 'short' })).toThrow(/at least 32/);
  });
});

describe('prober targets', () => {
  it('probes stable and live canary of services under rollout', () => {
    const idle: ServiceRouting = { ...state, service: 'idle', canary: undefined };
    expect(probeTargets([state, idle], false)).toEqual([{ service: 'chat', version: 'v1.2' }, { service: 'chat', version: 'v1.3' }]);
    expect(probeTargets([{ ...state, killed: true }, idle], true)).toEqual([{ service: 'chat', version: 'v1.2' }, { service: 'idle', version: 'v1.2' }]);
    const entries = new GoldenSet([
      { id: 'a', prompt: 'a', expect: { facts: ['a'] } },
      { id: 'b', prompt: 'b', service: 'other', expect: { facts: ['b'] } },
    ]).entries;
    expect(entriesFor(entries, 'chat').map((e) => e.id)).toEqual(['a']);
  });
});

describe('golden checks', () => {
  it('accepts any of several spellings', () => {
    const entry = { id: 'w', prompt: 'w', expect: { anyOf: ['H2O', 'H₂O'] } };
    expect(checkGoldenAnswer(entry, 'It is h2o.').ok).toBe(true);
    expect(checkGoldenAnswer(entry, 'It is H₂O.').ok).toBe(true);
    expect(checkGoldenAnswer(entry, 'It is CO2.')).toEqual({ ok: false, failed: 'none of "H2O", "H₂O" found' });
  });

  it('reads numbers and checks them within a tolerance', () => {
    expect(numbersIn('about 1,234.5 km, or -3 or 6e24; v2 is not a number')).toEqual([1234.5, -3, 6e24]);
    const entry = { id: 'pi', prompt: 'pi', expect: { number: { value: 3.14159, tolerance: 0.01 } } };
    expect(checkGoldenAnswer(entry, 'Pi is roughly 3.14.').ok).toBe(true);
    expect(checkGoldenAnswer(entry, 'Pi is 3.2.').ok).toBe(false);
    expect(checkGoldenAnswer({ id: 'b', prompt: 'b', expect: { number: { value: 100, tolerance: 0 } } }, 'It boils at 100 °C.').ok).toBe(true);
  });
});

describe('recording probe verdicts', () => {
  const labels = 'service="chat",version="v1.3",rollout_hash="h3"';
  const entry = { id: 'capital', prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } };
  function finished(text: string, over: Partial<FinishedSample> = {}): FinishedSample {
    const observation = { ...emptyObservation(), kind: 'json' as const, text, textLength: text.length, usage: { input: 10, output: 5, cached: 0 } };
    return { service: 'chat', version: 'v1.3', rolloutHash: 'h3', status: 200, request: undefined, responseHeaders: new Map(), observation, golden: entry, probability: 1, ...over };
  }

  it('scores every probe as golden-probe into the version\'s probe rate, and counts no user quantity', async () => {
    const registry = new Registry();
    const metrics = new QualityMetrics(registry, 300);
    let now = T0;
    const rates = new ProbeRates(60_000, () => now);
    const config = qualityConfigSchema.parse({ prices: { 'v1.3': { inputPerMillion: 1e6, outputPerMillion: 1e6 } } });
    const recorder = new SampleRecorder(config, metrics, EVALUATORS, undefined, createLogger('t', 'silent'), Math.random, rates);
    const user = { service: 'chat', version: 'v1.3', rollout_hash: 'h3' };
    metrics.touch(user);
    expect(rates.rate(user)).toBeUndefined();
    for (const answer of ['Paris', 'Lyon', 'Paris', 'Lyon']) recorder.record(finished(answer, { probe: true }));
    expect(rates.rate(user)).toBe(0.5);
    const text = await registry.metrics();
    expect(text).toContain(`inference_quality_score{${labels},evaluator="golden-probe"} 0.5`);
    expect(text).toContain(`fledge_quality_evaluated_total{${labels},evaluator="golden-probe"} 4`);
    expect(text).toContain(`fledge_quality_hallucination_verdicts_total{${labels},evaluator="golden-probe"} 2`);
    // Probe verdicts alone add nothing per request: user requests carry the rate (response-sampling.ts).
    expect(text).toContain(`inference_hallucination_total{${labels}} 0`);
    expect(text).not.toMatch(/inference_tokens_total\{[^}]*\} [1-9]/);
    expect(text).not.toMatch(/inference_cost_total\{[^}]*\} [1-9]/);
    // A user-traffic golden verdict for a probed version stays out of the counter (the probes own it).
    recorder.record(finished('Lyon'));
    expect(await registry.metrics()).toContain(`inference_hallucination_total{${labels}} 0`);
    expect(await registry.metrics()).toContain(`fledge_quality_evaluated_total{${labels},evaluator="golden"} 1`);
    // Once the verdicts leave the window, the version is no longer probed.
    now += 61_000;
    expect(rates.rate(user)).toBeUndefined();
    recorder.record(finished('Lyon'));
    expect(await registry.metrics()).toContain(`inference_hallucination_total{${labels}} 1`);
  });

  it('ignores self-reported headers unless the service opted in, and counts reference-free signals', async () => {
    const registry = new Registry();
    const metrics = new QualityMetrics(registry, 300);
    const recorder = new SampleRecorder(qualityConfigSchema.parse({}), metrics, EVALUATORS, undefined, createLogger('t', 'silent'));
    metrics.touch({ service: 'chat', version: 'v1.3', rollout_hash: 'h3' });
    const headers = new Map([['x-quality-score', '0.99'], ['x-hallucination', 'true']]);
    recorder.record(finished('Lyon, I think', { golden: undefined, responseHeaders: headers }));
    const cut = finished('', { golden: undefined });
    cut.observation.finishReason = 'length';
    recorder.record(cut);
    recorder.record(finished('{"a":', { golden: undefined, request: { prompt: 'x', stream: false, includeUsage: false, wantsJson: true, schema: undefined } }));
    // Logprob confidence: 0.3 is low, 0.5 (the limit) is not, no logprobs says nothing.
    for (const confidence of [0.3, 0.5]) {
      const unsure = finished('Paris', { golden: undefined });
      unsure.observation.confidence = confidence;
      recorder.record(unsure);
    }
    const text = await registry.metrics();
    expect(text).not.toContain('evaluator="model-reported"');
    expect(text).toContain(`inference_hallucination_total{${labels}} 0`);
    expect(text).toContain(`fledge_quality_signals_total{${labels},signal="empty"} 1`);
    expect(text).toContain(`fledge_quality_signals_total{${labels},signal="cut-off"} 1`);
    expect(text).toContain(`fledge_quality_signals_total{${labels},signal="json-invalid"} 1`);
    expect(text).toContain(`fledge_quality_signals_total{${labels},signal="low-confidence"} 1`);
    expect(text).toContain(`fledge_quality_confidence_count{${labels}} 2`);
  });
});

describe('n: evaluated samples behind a measurement', () => {
  it('derives the count from the seed queries: judged answers for quality, requests for the rest', async () => {
    const { derivedSamplesQuery } = await import('../../controller/analysis/samples.js');
    expect(derivedSamplesQuery('avg(inference_quality_score{rollout_hash="abc"})')).toBe('sum(increase(fledge_quality_evaluated_total{rollout_hash="abc"}[10m]))');
    expect(derivedSamplesQuery('sum(rate(inference_hallucination_total{rollout_hash="abc"}[5m])) / sum(rate(inference_requests_total{rollout_hash="abc"}[5m]))')).toBe(
      'sum(increase(fledge_quality_evaluated_total{rollout_hash="abc"}[5m]))',
    );
    expect(derivedSamplesQuery('histogram_quantile(0.95, rate(inference_latency_seconds_bucket{rollout_hash="abc"}[10m]))')).toBe('sum(increase(inference_requests_total{rollout_hash="abc"}[10m]))');
    expect(derivedSamplesQuery('up')).toBeUndefined();
  });

  it('puts n on a measurement of a metric without samplesQuery', async () => {
    const { takeMeasurement } = await import('../../controller/analysis/take-measurement.js');
    const metric = { name: 'quality-score', provider: { prometheus: { query: 'avg(inference_quality_score{rollout_hash="{{args.canary-hash}}"})' } }, successCondition: 'result[0] > 0.85', failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4, action: 'rollback' as const };
    const provider = { measure: async (q: string) => (q.includes('fledge_quality_evaluated_total') ? [37] : [0.9]) };
    const m = await takeMeasurement(metric, { canary: { 'canary-hash': 'h2' }, baseline: { 'canary-hash': 'h1' } }, provider, () => T0);
    expect(m).toMatchObject({ phase: 'Successful', value: [0.9], n: 37 });
  });
});
