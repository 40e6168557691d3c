/**
 * One reconcile of one rollout, the same for every host: from what the host read (stored
 * status, pending action, policy, target), decide invalid input (no traffic change), a new
 * revision, the start point and the action (prepare), run the engine (advance), apply the
 * traffic effects (apply-effects.ts), then persist the status, consume the action and record
 * the Events. Hosts only read their inputs and adapt their stores, routers and sinks.
 */
import type { Logger } from '../../common/logger.js';
import { advanceRollout } from '../engine/advance.js';
import { prepareRollout } from '../engine/prepare.js';
import { invalidRollout, transition, type RolloutEffect } from '../engine/rollout-machine.js';
import { ACTIVE_PHASES, type RolloutPhase } from '../engine/rollout-state.js';
import { toStatus, type RolloutStatus, type RolloutTarget } from '../kube/rollout-status.js';
import type { Policy } from '../policy/policy.js';
import { applyTraffic, planIsEmpty, trafficPlan } from './apply-effects.js';
import type { ReconcileHost, RolloutInputs } from './host.js';

/** Without a stable version, baseline queries must find no data (inconclusive), not match every series that lacks the label. */
export const NO_STABLE_HASH = 'fledge-no-stable-version';

export interface StepOutcome {
  /** The rollout's phase after this reconcile; undefined while waiting for a rollout that never started. */
  phase?: RolloutPhase;
  /** Epoch ms of the engine's next wake-up. */
  wakeAt?: number;
  /** The target is not there yet (host's `waiting`): look again soon. */
  waiting?: string;
  /** Router calls made (0 when nothing changed traffic). */
  trafficUpdates: number;
}

/** Called after each stage ('advance', 'traffic', 'persist') for the host's timings. */
export type Lap = (stage: string) => void;

export async function reconcileStep(inputs: RolloutInputs, host: ReconcileHost, log: Logger, lap: Lap = () => undefined): Promise<StepOutcome> {
  const now = host.clock();
  const stored = inputs.stored.kind === 'ok' ? inputs.stored.status : undefined;
  const previousText = inputs.stored.kind === 'none' ? undefined : inputs.stored.text;
  const pending = inputs.action;
  const action = pending?.action;
  const corrupt = inputs.stored.kind === 'corrupt' ? `${inputs.stored.problem}; use the retry action to start the rollout again` : undefined;

  const problem = 'problem' in inputs.policy ? inputs.policy.problem : inputs.target.kind === 'invalid' ? inputs.target.problem : corrupt && action !== 'retry' ? corrupt : undefined;
  if (problem) {
    // An unreadable status is not fixed by fixing the inputs: only retry restarts it.
    return markInvalid(inputs, host, log, stored, previousText, problem, problem !== corrupt, now);
  }
  if (inputs.target.kind === 'waiting') {
    log.info({ reason: inputs.target.reason }, 'rollout waiting');
    return { ...(stored ? { phase: stored.phase } : {}), waiting: inputs.target.reason, trafficUpdates: 0 };
  }
  if (!('policy' in inputs.policy) || inputs.target.kind !== 'ready') throw new Error('unreachable');
  const { policy } = inputs.policy;
  const { target } = inputs.target;

  const effects: RolloutEffect[] = [];
  const newRevision = stored?.target !== undefined && stored.target.canaryHash !== target.canaryHash;
  const inputFixed = stored?.phase === 'Invalid' && stored.inputProblem === true;
  if (newRevision) effects.push({ type: 'event', severity: 'Normal', reason: 'NewRevision', message: `${describeRevisionChange(stored.target!, target)}; starting the rollout again` });
  // The candidate's pods gate every weight increase, and losing them all is a breach.
  const candidate = host.candidateAvailability ? await host.candidateAvailability(target) : undefined;
  const options = host.candidateAvailability ? { ...host.options, candidate } : host.options;
  const prepared = prepareRollout({ policy, stored, restart: corrupt !== undefined || newRevision || (inputFixed && !stored?.target), inputFixed, action, now, options });
  effects.push(...prepared.effects);
  if (pending && !action) {
    effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `unknown ${inputs.actionLabel} "${pending.raw.trim()}" (expected promote, abort, pause, resume or retry)` });
  }

  const stableHash = target.stableHash || NO_STABLE_HASH;
  const advanced = await advanceRollout({ policy, state: prepared.state, hashes: { canaryHash: target.canaryHash, stableHash }, provider: host.metrics, clock: host.clock, options });
  effects.push(...advanced.effects);
  let { state, wakeAt } = advanced;
  if (host.afterAdvance) {
    const checked = await host.afterAdvance({ target, policy, state, options, now: host.clock() });
    if (checked.state !== state) wakeAt = checked.wakeAt;
    else if (checked.wakeAt !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, checked.wakeAt);
    state = checked.state;
    effects.push(...checked.effects);
  }
  const drift = weightDrift(host, target, state.phase, state.weight, effects);
  if (drift !== undefined) {
    log.warn({ route: target.virtualService, inForce: drift, expected: state.weight }, 'the route carries a different canary weight than the rollout set (a restarted stack?); setting it again');
    // An active rollout gets its weight back; a rolled-back candidate still in the routing state is retired again.
    effects.push(ACTIVE_PHASES.includes(state.phase) ? { type: 'set-weight', weight: state.weight } : { type: 'retire-candidate' });
  }
  lap('advance');

  const plan = trafficPlan(effects);
  const applied = planIsEmpty(plan) ? { calls: 0 } : await applyTraffic(host.routerFor(target, policy), target, plan, log, host.clock);
  const trafficUpdates = applied.calls;
  lap('traffic');
  const status = toStatus(state, policy.steps.length, target);
  // The last confirmation stays on the status while the weight it confirmed is in force.
  const verified = applied.verification ?? (stored?.weightVerified?.weight === state.weight ? stored.weightVerified : undefined);
  if (verified) status.weightVerified = verified;
  await persist(host, log, status, previousText, pending !== undefined, effects);
  lap('persist');
  return { phase: state.phase, trafficUpdates, ...(wakeAt === undefined ? {} : { wakeAt }) };
}

async function markInvalid(inputs: RolloutInputs, host: ReconcileHost, log: Logger, stored: RolloutStatus | undefined, previousText: string | undefined, problem: string, fixable: boolean, now: number): Promise<StepOutcome> {
  const pending = inputs.action;
  if (stored?.phase === 'Invalid' && stored.message === problem && !pending) return { phase: 'Invalid', trafficUpdates: 0 };
  const policy = 'policy' in inputs.policy ? inputs.policy.policy : undefined;
  const t = stored ? transition(policy ?? placeholderPolicy(inputs.policyName), stored, { type: 'invalid', now, message: problem }) : invalidRollout(inputs.policyName, problem, now);
  const effects: RolloutEffect[] = [...t.effects];
  if (pending) effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `${pending.raw.trim()} ignored: ${problem}` });
  const status = toStatus(t.state, policy?.steps.length ?? stored?.steps ?? 0, stored?.target, fixable && t.state.phase === 'Invalid');
  log.warn({ problem }, 'rollout input is invalid; traffic left as it is');
  await persist(host, log, status, previousText, pending !== undefined, effects);
  return { phase: t.state.phase, trafficUpdates: 0 };
}

async function persist(host: ReconcileHost, log: Logger, status: RolloutStatus, previousText: string | undefined, consumeAction: boolean, effects: readonly RolloutEffect[]): Promise<void> {
  await host.status.write(status, previousText, consumeAction);
  const events = effects.flatMap((e) => (e.type === 'event' ? [{ severity: e.severity, reason: e.reason, message: e.message }] : []));
  for (const ev of events) log.info({ reason: ev.reason, phase: status.phase, step: status.step, weight: status.weight }, ev.message);
  if (events.length) host.events.record(events, status);
}

/**
 * The weight in force when it disagrees with the one this rollout stands at, if the host can
 * tell and this reconcile does not set a weight anyway. Only rollouts that own the canary are
 * checked: active ones, and rolled-back ones whose candidate is still the canary.
 */
function weightDrift(host: ReconcileHost, target: RolloutTarget, phase: RolloutPhase, weight: number, effects: readonly RolloutEffect[]): number | undefined {
  if (!host.weightInForce || effects.some((e) => e.type === 'set-weight' || e.type === 'retire-candidate' || e.type === 'promote-candidate')) return undefined;
  const seen = host.weightInForce(target);
  if (!seen) return undefined;
  const inForce = seen.candidateIsCanary ? seen.weight : 0;
  if (ACTIVE_PHASES.includes(phase)) return inForce !== weight ? inForce : undefined;
  // A rolled-back candidate that is still the canary is reachable by flag: retire it, whatever its weight.
  return (phase === 'RolledBack' || phase === 'Failed') && seen.candidateIsCanary ? inForce : undefined;
}

function describeRevisionChange(previous: RolloutTarget, next: RolloutTarget): string {
  return previous.canarySubset !== next.canarySubset
    ? `candidate changed ${previous.canarySubset} → ${next.canarySubset}`
    : `candidate pod-template-hash changed ${previous.canaryHash} → ${next.canaryHash}`;
}

/** For an Invalid transition when the policy itself is the problem: no steps to run. */
function placeholderPolicy(name: string): Policy {
  return { name, steps: [], source: `policy ${name} (not loaded)` };
}
