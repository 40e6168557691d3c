/** The controller's own Prometheus metrics (its /metrics on the admin port). */
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { ROLLOUT_PHASES, type RolloutPhase } from '../engine/rollout-state.js';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileSeconds = new Histogram({
    name: 'fledge_controller_reconcile_duration_seconds',
    help: 'Time one reconcile of one rollout took (API reads, analysis queries, writes).',
    labelNames: ['result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });
  private readonly rollouts = new Gauge({ name: 'fledge_controller_rollouts', help: 'Rollouts this controller knows, by phase.', labelNames: ['phase'], registers: [this.registry] });
  readonly leader = new Gauge({ name: 'fledge_controller_leader', help: '1 while this replica holds the leader Lease.', registers: [this.registry] });
  private readonly phases = new Map<string, RolloutPhase>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'fledge_controller_' });
    for (const phase of ROLLOUT_PHASES) this.rollouts.set({ phase }, 0);
  }

  setPhase(key: string, phase: RolloutPhase | undefined): void {
    if (phase === undefined) this.phases.delete(key);
    else this.phases.set(key, phase);
    const counts = new Map<RolloutPhase, number>(ROLLOUT_PHASES.map((p) => [p, 0]));
    for (const p of this.phases.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    for (const [phase, n] of counts) this.rollouts.set({ phase }, n);
  }

  clearPhases(): void {
    this.phases.clear();
    for (const phase of ROLLOUT_PHASES) this.rollouts.set({ phase }, 0);
  }
}
