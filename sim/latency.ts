import type { Latency } from './knobs.js';
import { standardNormal, type Random } from './random.js';

/** z-score of the 95th percentile of a standard normal distribution. */
const Z95 = 1.6448536269514722;
const MAX_MS = 600_000;

/** The total response time in ms for one request, drawn from the latency knob. */
export function sampleLatencyMs(latency: Latency, random: Random): number {
  switch (latency.kind) {
    case 'fixed':
      return latency.ms;
    case 'uniform':
      return latency.minMs + (latency.maxMs - latency.minMs) * random();
    case 'lognormal': {
      // ln(latency) ~ N(mu, sigma): the median is e^mu and the p95 is e^(mu + Z95 sigma).
      const mu = Math.log(latency.medianMs);
      const sigma = (Math.log(latency.p95Ms) - mu) / Z95;
      return Math.min(MAX_MS, Math.exp(mu + sigma * standardNormal(random)));
    }
  }
}

/**
 * When a stream's parts are due, in ms from the start of the request: the first content
 * chunk at the time to first token (default a quarter of the total), the others evenly
 * over what is left, and the finishing chunk at the total.
 */
export function streamSchedule(totalMs: number, ttftMs: number | undefined, chunks: number): { chunkAtMs: number[]; endMs: number } {
  const first = Math.min(ttftMs ?? totalMs / 4, MAX_MS);
  const endMs = Math.max(first, totalMs);
  if (chunks <= 0) return { chunkAtMs: [], endMs };
  if (chunks === 1) return { chunkAtMs: [first], endMs };
  const step = (endMs - first) / (chunks - 1);
  return { chunkAtMs: Array.from({ length: chunks }, (_, i) => first + step * i), endMs };
}
