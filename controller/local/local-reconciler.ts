/**
 * One reconcile of one local rollout: read its stored status and pending action, resolve
 * its policy and target, feed the engine (the same prepare + advance as cluster mode), apply
 * the traffic effects through the local router (the last mirror and weight of this
 * reconcile, then a promotion), then persist the status, consume the action and append the
 * Events. Invalid input changes no traffic.
 */
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import { advanceRollout } from '../engine/advance.js';
import { prepareRollout } from '../engine/prepare.js';
import { invalidRollout, transition, type MachineOptions, type RolloutEffect } from '../engine/rollout-machine.js';
import { ACTIVE_PHASES, TERMINAL_PHASES, type RolloutPhase } from '../engine/rollout-state.js';
import type { Policy } from '../policy/policy.js';
import { toStatus, type RolloutStatus, type RolloutTarget } from '../kube/rollout-status.js';
import type { ActionFiles } from './action-files.js';
import { resolveLocalTarget } from './local-target.js';
import type { LocalRolloutSpec } from './rollouts-file.js';
import type { LocalStateStore } from './state-store.js';
import type { TrafficState } from './traffic-state.js';

export type LocalPolicyLookup = (name: string) => { policy: Policy } | { problem: string };

/** What the local reconciler needs of a traffic router (LocalTrafficRouter). */
export interface LocalRouter {
  setWeight(weight: number): Promise<void>;
  setMirror(percent: number): Promise<void>;
  promoteCandidate(): Promise<void>;
  retireCandidate(): Promise<void>;
}

export interface LocalReconcilerDeps {
  store: LocalStateStore;
  actions: ActionFiles;
  policies: () => LocalPolicyLookup;
  traffic: () => TrafficState;
  routerFor: (target: RolloutTarget) => LocalRouter;
  metrics: MetricsProvider;
  options: MachineOptions;
  clock: () => number;
  logger: Logger;
}

export interface LocalReconcileOutcome {
  phase: RolloutPhase;
  wakeAt?: number;
}

export class LocalReconciler {
  /** Traffic changes of all rollouts, one at a time: each waits for Envoy to report its own routes version. */
  private trafficQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: LocalReconcilerDeps) {}

  async reconcile(spec: LocalRolloutSpec): Promise<LocalReconcileOutcome> {
    const { deps } = this;
    const log = deps.logger.child({ rollout: spec.name });
    const now = deps.clock();
    const stored = deps.store.read(spec.name);
    const previousText = stored.kind === 'none' ? undefined : stored.text;
    const status = stored.kind === 'ok' ? stored.status : undefined;
    const pending = deps.actions.read(spec.name);
    const action = pending?.action;
    const consume = () => pending && deps.actions.consume(spec.name, pending);

    const lookup = deps.policies()(spec.policy);
    const resolution = resolveLocalTarget(spec, deps.traffic(), status?.target);
    const corrupt = stored.kind === 'corrupt' ? `${stored.problem}; use the retry action to start the rollout again` : undefined;
    // A finished rollout is history: a later change elsewhere (its candidate promoted, the
    // file's policies edited) does not make it Invalid; only retry starts it again.
    const finished = status !== undefined && TERMINAL_PHASES.includes(status.phase) && status.target?.canarySubset === spec.candidate && action !== 'retry';
    const problem = 'problem' in lookup ? lookup.problem : 'problem' in resolution && !finished ? resolution.problem : corrupt && action !== 'retry' ? corrupt : undefined;

    if (problem) {
      const fixable = problem !== corrupt;
      if (status?.phase === 'Invalid' && status.message === problem && !pending) return { phase: 'Invalid' };
      const t = status ? transition('policy' in lookup ? lookup.policy : placeholderPolicy(spec.policy), status, { type: 'invalid', now, message: problem }) : invalidRollout(spec.policy, problem, now);
      const effects: RolloutEffect[] = [...t.effects];
      if (pending) effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `${pending.raw.trim()} ignored: ${problem}` });
      const next = toStatus(t.state, 'policy' in lookup ? lookup.policy.steps.length : (status?.steps ?? 0), status?.target, fixable && t.state.phase === 'Invalid');
      log.warn({ problem }, 'rollout input is invalid; traffic left as it is');
      this.persist(spec.name, next, previousText, effects, log);
      consume();
      return { phase: t.state.phase };
    }
    if (!('policy' in lookup)) throw new Error('unreachable');
    const { policy } = lookup;
    const target = 'target' in resolution ? resolution.target : status!.target!;

    const effects: RolloutEffect[] = [];
    const newCandidate = status?.target !== undefined && status.target.canaryHash !== target.canaryHash;
    const inputFixed = status?.phase === 'Invalid' && status.inputProblem === true;
    if (newCandidate) effects.push({ type: 'event', severity: 'Normal', reason: 'NewRevision', message: `candidate changed ${status!.target!.canarySubset} → ${target.canarySubset}; starting the rollout again` });
    const prepared = prepareRollout({ policy, stored: status, restart: corrupt !== undefined || newCandidate || (inputFixed && !status?.target), inputFixed, action, now, options: deps.options });
    effects.push(...prepared.effects);
    if (pending && !action) effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `unknown action "${pending.raw.trim()}" (expected promote, abort, pause, resume or retry)` });

    const advanced = await advanceRollout({ policy, state: prepared.state, hashes: { canaryHash: target.canaryHash, stableHash: target.stableHash }, provider: deps.metrics, clock: deps.clock, options: deps.options });
    effects.push(...advanced.effects);
    const drift = this.weightDrift(target, advanced.state.phase, advanced.state.weight, effects);
    if (drift) {
      log.warn({ service: target.virtualService, inForce: drift.inForce, expected: advanced.state.weight }, 'the stack routes a different canary weight than the rollout set (a restarted stack?); setting it again');
      effects.push({ type: 'set-weight', weight: advanced.state.weight });
      if (!ACTIVE_PHASES.includes(advanced.state.phase)) effects.push({ type: 'retire-candidate' });
    }
    await this.applyTraffic(target, effects, log);
    this.persist(spec.name, toStatus(advanced.state, policy.steps.length, target), previousText, effects, log);
    consume();
    return advanced.wakeAt === undefined ? { phase: advanced.state.phase } : { phase: advanced.state.phase, wakeAt: advanced.wakeAt };
  }

  /**
   * Whether the traffic state disagrees with the weight this rollout stands at (e.g. `fledge up`
   * was restarted and began all-stable), when this reconcile does not set a weight anyway.
   * Only rollouts that own their service's canary are checked: active ones, and rolled-back
   * ones whose candidate is still the canary (retired again); Invalid and Promoted ones change nothing.
   */
  private weightDrift(target: RolloutTarget, phase: RolloutPhase, weight: number, effects: RolloutEffect[]): { inForce: number } | undefined {
    if (effects.some((e) => e.type === 'set-weight' || e.type === 'promote-candidate')) return undefined;
    const service = this.deps.traffic().services[target.virtualService];
    if (!service) return undefined;
    const inForce = service.canary === target.canarySubset ? service.canaryWeight : 0;
    const active = ACTIVE_PHASES.includes(phase);
    const rolledBack = (phase === 'RolledBack' || phase === 'Failed') && service.canary === target.canarySubset;
    // A rolled-back candidate that is still the canary is reachable by flag: retire it, whatever its weight.
    return (active && inForce !== weight) || rolledBack ? { inForce } : undefined;
  }

  private applyTraffic(target: RolloutTarget, effects: RolloutEffect[], log: Logger): Promise<void> {
    const run = this.trafficQueue.then(() => this.applyTrafficNow(target, effects, log));
    this.trafficQueue = run.catch(() => undefined);
    return run;
  }

  private async applyTrafficNow(target: RolloutTarget, effects: RolloutEffect[], log: Logger): Promise<void> {
    const mirror = effects.findLast((e) => e.type === 'set-mirror');
    const weight = effects.findLast((e) => e.type === 'set-weight');
    const promote = effects.some((e) => e.type === 'promote-candidate');
    if (!mirror && !weight && !promote) return;
    const router = this.deps.routerFor(target);
    if (effects.findLast((e) => e.type === 'set-weight' || e.type === 'retire-candidate')?.type === 'retire-candidate') {
      // Weight 0, no mirror, and the candidate is no longer the service's canary.
      await router.retireCandidate();
      log.info({ service: target.virtualService, canary: target.canarySubset, stable: target.stableSubset }, 'candidate retired: weight 0, not the canary any more');
      return;
    }
    if (mirror?.type === 'set-mirror') await router.setMirror(mirror.percent);
    if (weight?.type === 'set-weight') {
      await router.setWeight(weight.weight);
      log.info({ service: target.virtualService, canaryWeight: weight.weight, canary: target.canarySubset, stable: target.stableSubset }, 'canary weight set');
    }
    if (promote) {
      await router.promoteCandidate();
      log.info({ service: target.virtualService, stable: target.canarySubset }, 'candidate promoted to stable');
    }
  }

  private persist(name: string, status: RolloutStatus, previousText: string | undefined, effects: RolloutEffect[], log: Logger): void {
    this.deps.store.write(name, status, previousText);
    const events = effects.flatMap((e) => (e.type === 'event' ? [{ severity: e.severity, reason: e.reason, message: e.message }] : []));
    for (const ev of events) log.info({ reason: ev.reason, phase: status.phase, step: status.step, weight: status.weight }, ev.message);
    this.deps.store.appendEvents(name, events, this.deps.clock());
  }
}

/** For an Invalid transition when the policy itself is the problem: no steps to run. */
function placeholderPolicy(name: string): Policy {
  return { name, steps: [], source: `policy ${name} (not loaded)` };
}
