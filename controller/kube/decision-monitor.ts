/**
 * Runs the silent fail-open check (analysis/decision-coverage.ts) for active rollouts, at
 * most once per interval each, and feeds a detection to the engine as a `no-decisions`
 * event (the rollout pauses). A detection must repeat on consecutive checks before it pauses:
 * Prometheus scrapes Envoy and extproc at different moments, so one window can hold the
 * proxy's requests before it holds extproc's decisions. A failing query is logged and decides
 * nothing: an outage of the metrics backend is the analyses' business.
 */
import type { Logger } from '../../common/logger.js';
import { DEFAULT_DECISIONS_QUERY, DEFAULT_MIN_REQUESTS, DEFAULT_TRAFFIC_QUERY, fillQuery, silentFailOpen, type DecisionCoverageQueries } from '../analysis/decision-coverage.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import { nextWakeAt, transition, type MachineOptions, type Transition } from '../engine/rollout-machine.js';
import type { RolloutState } from '../engine/rollout-state.js';
import type { Policy } from '../policy/policy.js';

export interface DecisionMonitorOptions {
  queries?: Partial<DecisionCoverageQueries>;
  minRequests?: number;
  /** Between two checks of one rollout (real time; default 30s). */
  intervalMs?: number;
  /** Consecutive checks that must find traffic without decisions before the rollout pauses (default 2). */
  confirmations?: number;
}

export interface DecisionCheckInput {
  key: string;
  service: string;
  namespace: string;
  policy: Policy;
  state: RolloutState;
  options: MachineOptions;
  now: number;
}

export class DecisionMonitor {
  private readonly queries: DecisionCoverageQueries;
  private readonly minRequests: number;
  private readonly intervalMs: number;
  private readonly confirmations: number;
  private readonly nextCheck = new Map<string, number>();
  /** Consecutive detections per rollout, reset by any check that finds decisions (or too little traffic). */
  private readonly strikes = new Map<string, number>();

  constructor(
    private readonly provider: MetricsProvider,
    private readonly log: Logger,
    options: DecisionMonitorOptions = {},
  ) {
    this.queries = { traffic: options.queries?.traffic ?? DEFAULT_TRAFFIC_QUERY, decisions: options.queries?.decisions ?? DEFAULT_DECISIONS_QUERY };
    this.minRequests = options.minRequests ?? DEFAULT_MIN_REQUESTS;
    this.intervalMs = options.intervalMs ?? 30_000;
    this.confirmations = Math.max(1, options.confirmations ?? 2);
    // Fail at start-up on a template with an unknown placeholder, not at the first check.
    for (const q of Object.values(this.queries)) fillQuery(q, { service: 'x', namespace: 'x' });
  }

  /**
   * For a Progressing rollout whose check is due: the transition to Paused when traffic
   * flows undecided, and the wake-up for the next check. Otherwise the state unchanged.
   */
  async check(input: DecisionCheckInput): Promise<Transition & { wakeAt?: number }> {
    const { key, state, now } = input;
    const unchanged = { state, effects: [] };
    if (state.phase !== 'Progressing') {
      this.forget(key);
      return unchanged;
    }
    const due = this.nextCheck.get(key) ?? now;
    if (now < due) return { ...unchanged, wakeAt: due };
    const next = now + this.intervalMs;
    this.nextCheck.set(key, next);
    const vars = { service: input.service, namespace: input.namespace };
    let requests: number;
    let decisions: number;
    try {
      [requests, decisions] = await Promise.all([this.sum(fillQuery(this.queries.traffic, vars)), this.sum(fillQuery(this.queries.decisions, vars))]);
    } catch (err) {
      this.log.warn({ rollout: key, err: (err as Error).message }, 'decision coverage check failed; skipped');
      return { ...unchanged, wakeAt: next };
    }
    const problem = silentFailOpen({ service: input.service, requests, decisions, minRequests: this.minRequests });
    if (!problem) {
      this.strikes.delete(key);
      return { ...unchanged, wakeAt: next };
    }
    const strikes = (this.strikes.get(key) ?? 0) + 1;
    if (strikes < this.confirmations) {
      this.strikes.set(key, strikes);
      this.log.info({ rollout: key, requests, decisions, strikes }, 'traffic without extproc decisions; confirming on the next check');
      return { ...unchanged, wakeAt: next };
    }
    this.strikes.delete(key);
    this.log.warn({ rollout: key, requests, decisions }, problem);
    const paused = transition(input.policy, state, { type: 'no-decisions', now, message: problem }, input.options);
    const wakeAt = nextWakeAt(input.policy, paused.state, input.options);
    return wakeAt === undefined ? paused : { ...paused, wakeAt };
  }

  forget(key: string): void {
    this.nextCheck.delete(key);
    this.strikes.delete(key);
  }

  private async sum(query: string): Promise<number> {
    const values = await this.provider.measure(query);
    return values.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  }
}
