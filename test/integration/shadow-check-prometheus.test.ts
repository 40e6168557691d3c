/**
 * The built-in shadow-check template's queries on a real Prometheus, over the series extproc's
 * ShadowMetrics exports: a service whose copied traffic has no golden question (its
 * golden-correct series exist at 0) measures 0 golden answers lost, not NaN (which fails every
 * condition and rolled healthy candidates back in the cluster test); a candidate that loses
 * golden answers the stable's second answers keep measures that share beyond the noise floor.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { substituteArgs } from '../../controller/analysis/args.js';
import { PrometheusProvider } from '../../controller/analysis/prometheus.js';
import { loadShadowPolicy } from '../../controller/policy/load.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { answerFeatures } from '../../extproc/shadow/answer-features.js';
import type { ShadowTicket } from '../../extproc/shadow/shadow-decision.js';
import { ShadowMetrics } from '../../extproc/shadow/shadow-metrics.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';

const answer = (text: string, goldenCorrect?: boolean) =>
  answerFeatures({ observation: { ...emptyObservation(), text, textLength: text.length }, status: 200, latencyMs: 100, ...(goldenCorrect === undefined ? {} : { goldenCorrect }) });

function ticket(service: string, candidateHash: string): ShadowTicket {
  return { service, stable: 'v1', candidate: 'v2', candidateHash, requestId: 'first', noise: false };
}

describe('shadow-check on a real Prometheus', () => {
  const registry = new Registry();
  const metrics = new ShadowMetrics(registry);
  let server: http.Server;
  let prometheus: RunningPrometheus;
  let provider: PrometheusProvider;

  const check = loadShadowPolicy().steps[1]!;
  if (check.kind !== 'analysis') throw new Error('shadow-canary step 1 should be shadow-check');
  const queryOf = (name: string, hash: string) => substituteArgs(check.analysis.metrics.find((m) => m.name === name)!.provider.prometheus.query, { 'canary-hash': hash });
  const measure = async (name: string, hash: string) => (await provider.measure(queryOf(name, hash)))[0];

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    prometheus = await startPrometheus([`127.0.0.1:${(server.address() as AddressInfo).port}`], 500);
    provider = new PrometheusProvider({ address: prometheus.url });

    // The series exist at 0 from the first shadowed request (extproc touches them), as in production.
    metrics.touch(ticket('plain', 'h-plain'));
    metrics.touch(ticket('golden', 'h-golden'));
    await prometheus.waitForScrapes(2);
    const plain = { service: 'plain', version: 'v2', rollout_hash: 'h-plain' };
    const golden = { service: 'golden', version: 'v2', rollout_hash: 'h-golden' };
    for (let i = 0; i < 60; i++) {
      // No golden question among the copies: golden-correct is never defined.
      metrics.record({ kind: 'candidate', requestId: `p${i}`, stable: answer(`answer ${i}`), other: answer(`answer ${i}`) }, plain);
      if (i % 4 === 0) metrics.record({ kind: 'noise', requestId: `p${i}`, stable: answer(`answer ${i}`), other: answer(`answer ${i}`) }, plain);
      // Golden questions: the candidate loses 18 of 60 (30%), the stable's second answers none.
      metrics.record({ kind: 'candidate', requestId: `g${i}`, stable: answer('Paris', true), other: answer('Lyon', i % 10 < 3 ? false : true) }, golden);
      if (i % 4 === 0) metrics.record({ kind: 'noise', requestId: `g${i}`, stable: answer('Paris', true), other: answer('Paris', true) }, golden);
    }
    await prometheus.waitForScrapes(3);
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await new Promise((r) => server?.close(r));
  });

  it('a service whose traffic has no golden question loses no golden answer (0, not NaN), and nothing else stands out', async () => {
    expect(await measure('shadow-golden-lost', 'h-plain')).toBe(0);
    expect(await measure('shadow-failures', 'h-plain')).toBe(0);
    const ratio = await measure('shadow-length-ratio', 'h-plain');
    expect(ratio).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThanOrEqual(1.1);
  });

  it('a candidate that loses golden answers the stable keeps measures the loss beyond the noise floor', async () => {
    const lost = await measure('shadow-golden-lost', 'h-golden');
    expect(lost).toBeGreaterThan(0.2);
    expect(lost).toBeLessThan(0.4);
  });
});
