import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SeriesCache } from './metric-series.js';

/** Seconds; dense around 0.5-4 s where LLM latency SLOs (the seed's p95 < 2 s) live. */
const INFERENCE_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 6, 8, 12, 16, 32, 64];
/** Seconds; extproc's own work per phase should sit in the tens of microseconds. */
const PHASE_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];

const INFERENCE_LABELS = ['service', 'version', 'rollout_hash'] as const;

/** Everything extproc exports on /metrics, on a registry of its own. */
export class ExtprocMetrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'inference_requests_total',
    help: 'Inference requests answered, by service, serving version and rollout hash.',
    labelNames: INFERENCE_LABELS,
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'inference_errors_total',
    help: 'Inference requests answered with a 5xx status (including Envoy local replies).',
    labelNames: INFERENCE_LABELS,
    registers: [this.registry],
  });

  readonly latency = new Histogram({
    name: 'inference_latency_seconds',
    help: 'Seconds from request headers to response headers as seen by extproc (time to first byte; the whole response for non-streaming calls).',
    labelNames: INFERENCE_LABELS,
    buckets: INFERENCE_LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly phaseDuration = new Histogram({
    name: 'fledge_extproc_phase_duration_seconds',
    help: "Seconds extproc spent on one ext_proc message, by phase (its own cost, not the upstream's).",
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });

  readonly decisions = new Counter({
    name: 'fledge_extproc_decisions_total',
    help: 'Routing decisions by service, chosen version and reason (flag, sticky, random, killed, kill-switch, guardrail, shadow, no-canary, unknown-service, error, probe).',
    labelNames: ['service', 'version', 'reason'] as const,
    registers: [this.registry],
  });

  readonly streamErrors = new Counter({
    name: 'fledge_extproc_stream_errors_total',
    help: 'ext_proc streams that ended in an error or a processing failure.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly probeRequests = new Counter({
    name: 'fledge_probe_requests_total',
    help: 'Verified golden probes answered, by service, version, rollout hash and status class; not in inference_requests_total.',
    labelNames: [...INFERENCE_LABELS, 'code'] as const,
    registers: [this.registry],
  });

  readonly shadowCopies = new Counter({
    name: 'fledge_shadow_copy_requests_total',
    help: 'Shadow copies extproc sent itself and routed (pinned by x-fledge-shadow), by service, version, rollout hash and status class; not in inference_requests_total.',
    labelNames: [...INFERENCE_LABELS, 'code'] as const,
    registers: [this.registry],
  });

  readonly routeMisses = new Counter({
    name: 'fledge_extproc_route_misses_total',
    help: "Requests extproc routed to a version whose answer did not come by that version's route (no x-fledge-served-by): the proxy's routes were behind extproc's state, so its weighted route served them. Counted under no version in inference_*; a shadow copy among them is not captured.",
    labelNames: ['service', 'version'] as const,
    registers: [this.registry],
  });

  readonly probeRejected = new Counter({
    name: 'fledge_probe_rejected_total',
    help: 'x-fledge-probe headers that did not pin a request (malformed, bad-mac, expired, replayed, not-serving); those requests were routed as user requests.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly guardrailTripped = new Gauge({
    name: 'fledge_guardrail_tripped',
    help: 'Canary revisions the data-plane guardrail took off (1 while the trip lasts), by service, version, rollout hash and the signal that tripped it; the controller rolls back on it.',
    labelNames: [...INFERENCE_LABELS, 'signal'] as const,
    registers: [this.registry],
  });

  readonly guardrailTrips = new Counter({
    name: 'fledge_guardrail_trips_total',
    help: 'Guardrail trips this replica applied, by service, version, signal and origin (local: seen here; peer: shared by another replica).',
    labelNames: ['service', 'version', 'signal', 'origin'] as const,
    registers: [this.registry],
  });

  /** The hot path's bound label children (requests, errors, latency, decisions, phases). */
  readonly series = new SeriesCache(this);

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'fledge_extproc_' });
  }
}
