import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, metricValue } from '../harness/dataplane.js';

const streamBody = { messages: [{ role: 'user', content: 'tell me' }], stream: true };

describe('stream_options.include_usage injection for sampled streams', () => {
  const dp = new DataPlane();

  beforeAll(async () => {
    await dp.start(
      [
        { name: 'inject', stable: 'v1', rolloutHashes: { v1: 'hash-inject' } },
        { name: 'plain', stable: 'v1', rolloutHashes: { v1: 'hash-plain' } },
      ],
      undefined,
      {
        knobs: { 'inject/v1': { latency: { kind: 'fixed', ms: 30 }, tokens: { completion: 12 } }, 'plain/v1': { latency: { kind: 'fixed', ms: 30 }, tokens: { completion: 12 } } },
        extprocConfig: { quality: { injectStreamUsage: true, sampling: { services: { inject: 1, plain: 0 } } } },
      },
    );
  }, 60_000);

  afterAll(() => dp.stop());

  it('a sampled stream that did not ask for usage gets it, and its tokens are counted', async () => {
    const r = await dp.request({ host: 'inject', body: streamBody });
    expect(r.status, `${JSON.stringify(r.headers)} ${r.body}`).toBe(200);
    expect(r.body).toContain('"usage":{"prompt_tokens"');
    expect(r.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    await expect.poll(async () => metricValue(await dp.metricsText(), 'inference_tokens_total', { rollout_hash: 'hash-inject', type: 'output' })).toBe(12);
  });

  it('an unsampled stream is passed through untouched', async () => {
    const r = await dp.request({ host: 'plain', body: streamBody });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain('"usage"');
  });
});
