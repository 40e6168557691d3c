import type { Counter, Histogram } from 'prom-client';
import type { DecisionReason } from './decision.js';

type CounterChild = ReturnType<Counter<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

/** One service/version/rollout-hash's user series, bound once (prom-client hashes a label object per call otherwise). */
export interface InferenceSeries {
  requests: CounterChild;
  errors: CounterChild;
  latency: HistogramChild;
}

/**
 * Label children built on first use and reused by every later request with the same
 * labels: the hot path does nested Map lookups instead of building and hashing a labels
 * object per metric operation. Only valid while nobody calls reset()/remove() on the
 * metrics behind them (extproc never does for these).
 */
export class SeriesCache {
  private readonly inference = new Map<string, Map<string, Map<string, InferenceSeries>>>();
  private readonly decisionChildren = new Map<string, Map<string, Map<DecisionReason, CounterChild>>>();
  private readonly phaseChildren = new Map<string, HistogramChild>();

  constructor(
    private readonly metrics: {
      requests: Counter<'service' | 'version' | 'rollout_hash'>;
      errors: Counter<'service' | 'version' | 'rollout_hash'>;
      latency: Histogram<'service' | 'version' | 'rollout_hash'>;
      decisions: Counter<'service' | 'version' | 'reason'>;
      phaseDuration: Histogram<'phase'>;
    },
  ) {}

  inferenceSeries(service: string, version: string, rolloutHash: string): InferenceSeries {
    const byVersion = getOrSet(this.inference, service, () => new Map<string, Map<string, InferenceSeries>>());
    const byHash = getOrSet(byVersion, version, () => new Map<string, InferenceSeries>());
    return getOrSet(byHash, rolloutHash, () => {
      const labels = { service, version, rollout_hash: rolloutHash };
      const series = { requests: this.metrics.requests.labels(labels), errors: this.metrics.errors.labels(labels), latency: this.metrics.latency.labels(labels) };
      // Created at 0 once, so an error rate with no errors reads 0, not an empty result.
      series.errors.inc(0);
      return series;
    });
  }

  decision(service: string, version: string, reason: DecisionReason): CounterChild {
    const byVersion = getOrSet(this.decisionChildren, service, () => new Map<string, Map<DecisionReason, CounterChild>>());
    const byReason = getOrSet(byVersion, version, () => new Map<DecisionReason, CounterChild>());
    return getOrSet(byReason, reason, () => this.metrics.decisions.labels({ service, version, reason }));
  }

  phase(phase: string): HistogramChild {
    return getOrSet(this.phaseChildren, phase, () => this.metrics.phaseDuration.labels({ phase }));
  }
}

function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}
