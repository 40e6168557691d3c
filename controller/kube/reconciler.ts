/**
 * One reconcile of one candidate Deployment: read it fresh, resolve its policy and target,
 * feed the engine (stored state, the pending action, the clock, due measurements), apply
 * the traffic effects (one VirtualService update: the last weight of this reconcile), then
 * persist the status, consume the action and record Events. Returns when to come back.
 */
import type { V1Deployment } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import { advanceRollout } from '../engine/advance.js';
import { invalidRollout, transition, type MachineOptions, type RolloutEffect } from '../engine/rollout-machine.js';
import { prepareRollout } from '../engine/prepare.js';
import type { RolloutPhase, RolloutState } from '../engine/rollout-state.js';
import type { Policy } from '../policy/policy.js';
import type { TrafficRouter } from '../traffic/router.js';
import { verifyLiveWeight, type WeightVerification } from '../traffic/weight-verification.js';
import type { EventRecorder, RolloutEventRecord } from './event-recorder.js';
import type { PolicySourceReader } from './policy-source.js';
import { ANNOTATION, deploymentFingerprint, parseAction, parseStatus, serializeStatus, toStatus, type RolloutStatus, type RolloutTarget } from './rollout-status.js';
import type { DeploymentStatusStore } from './status-store.js';
import type { TargetResolver } from './target-resolver.js';
import { loadDefaultPolicy } from '../policy/load.js';

export interface ReconcilerDeps {
  store: DeploymentStatusStore;
  policies: PolicySourceReader;
  targets: TargetResolver;
  routerFor: (namespace: string, target: RolloutTarget) => TrafficRouter;
  events: EventRecorder;
  metrics: MetricsProvider;
  options: MachineOptions;
  clock: () => number;
  logger: Logger;
}

export interface ReconcileOutcome {
  /** Epoch ms of the engine's next wake-up. */
  wakeAt?: number;
  /** Something is not there yet; look again after this long. */
  requeueAfterMs?: number;
  /** The rollout's phase after this reconcile; undefined when the Deployment is not (or no longer) managed. */
  phase?: RolloutPhase;
  /** VirtualService writes done (0 or 1). */
  trafficUpdates?: number;
  /** Milliseconds spent per stage, for debug logs and the benchmark. */
  timings?: Record<string, number>;
}

const WAITING_REQUEUE_MS = 2_000;
export const NO_STABLE_HASH = 'fledge-no-stable-version';
/** How long a resolved target is reused for wake-ups of an unchanged Deployment. */
export const TARGET_REUSE_MS = 30_000;

interface CachedTarget {
  fingerprint: string;
  target: RolloutTarget;
  at: number;
}

export class Reconciler {
  private readonly fallbackPolicy = loadDefaultPolicy();
  // A pure shortcut: wake-ups of an unchanged Deployment reuse its target for a while instead
  // of re-reading the VirtualService, DestinationRules and ReplicaSets. A change to the
  // Deployment (new revision, annotations) resolves again; so does a routing error.
  private readonly targets = new Map<string, CachedTarget>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileOutcome> {
    const { deps } = this;
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (stage: string) => {
      const now = performance.now();
      timings[stage] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    const deployment = await deps.store.read(namespace, name);
    lap('read');
    const annotations = deployment?.metadata?.annotations ?? {};
    if (!deployment || !annotations[ANNOTATION.virtualService]) return {};
    const log = deps.logger.child({ deployment: `${namespace}/${name}` });

    const action = parseAction(annotations[ANNOTATION.action]);
    const hasActionAnnotation = annotations[ANNOTATION.action] !== undefined;
    const statusText = annotations[ANNOTATION.status];
    let stored: RolloutStatus | undefined;
    let corrupt: string | undefined;
    if (statusText) {
      try {
        stored = parseStatus(statusText);
      } catch (err) {
        corrupt = `${ANNOTATION.status} is unreadable (${(err as Error).message}); use the retry action to start the rollout again`;
      }
    }
    const policyName = annotations[ANNOTATION.policy] || 'default';
    const now = deps.clock();

    const lookup = await deps.policies.lookup(namespace, policyName);
    lap('policy');
    const cacheKey = `${namespace}/${name}`;
    const cached = this.targets.get(cacheKey);
    const fingerprint = deploymentFingerprint(deployment);
    const reusable = cached && cached.fingerprint === fingerprint && deps.clock() - cached.at < TARGET_REUSE_MS && !action;
    const resolution = reusable ? { kind: 'ready' as const, target: cached.target } : await deps.targets.resolve(deployment);
    if (resolution.kind === 'ready') {
      if (!reusable) this.targets.set(cacheKey, { fingerprint, target: resolution.target, at: deps.clock() });
    } else this.targets.delete(cacheKey);
    lap('resolve');
    const problem = 'problem' in lookup ? lookup.problem : resolution.kind === 'invalid' ? resolution.problem : corrupt && action !== 'retry' ? corrupt : undefined;
    // An unreadable status is not fixed by fixing the cluster objects: only retry restarts it.
    const fixable = problem !== corrupt;
    if (problem) return this.markInvalid(deployment, stored, policyName, 'policy' in lookup ? lookup.policy : undefined, problem, fixable, hasActionAnnotation, now, log);
    if (resolution.kind === 'waiting') {
      log.info({ reason: resolution.reason }, 'rollout waiting');
      return { requeueAfterMs: WAITING_REQUEUE_MS, ...(stored ? { phase: stored.phase } : {}) };
    }
    if (resolution.kind !== 'ready' || !('policy' in lookup)) throw new Error('unreachable');
    const { policy } = lookup;
    const { target } = resolution;

    const effects: RolloutEffect[] = [];
    const newRevision = stored?.target !== undefined && stored.target.canaryHash !== target.canaryHash;
    const inputFixed = stored?.phase === 'Invalid' && stored.inputProblem === true;
    if (newRevision) effects.push({ type: 'event', severity: 'Normal', reason: 'NewRevision', message: `candidate pod-template-hash changed ${stored!.target!.canaryHash} → ${target.canaryHash}; starting the rollout again` });
    const prepared = prepareRollout({ policy, stored, restart: corrupt !== undefined || newRevision || (inputFixed && !stored?.target), inputFixed, action, now, options: deps.options });
    let state: RolloutState = prepared.state;
    effects.push(...prepared.effects);
    if (!action && hasActionAnnotation) {
      effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `unknown ${ANNOTATION.action} "${annotations[ANNOTATION.action]}" (expected promote, abort, pause, resume or retry)` });
    }

    // Without a stable Deployment, baseline queries must find no data (inconclusive), not
    // match every series that lacks the label, as rollout_hash="" would.
    const stableHash = target.stableHash || NO_STABLE_HASH;
    const advanced = await advanceRollout({ policy, state, hashes: { canaryHash: target.canaryHash, stableHash }, provider: deps.metrics, clock: deps.clock, options: deps.options });
    state = advanced.state;
    effects.push(...advanced.effects);
    lap('advance');

    let trafficUpdates: number;
    let verification: WeightVerification | undefined;
    try {
      ({ writes: trafficUpdates, verification } = await this.applyTraffic(namespace, target, effects, log));
    } catch (err) {
      this.targets.delete(cacheKey);
      throw err;
    }
    lap('traffic');
    const status = toStatus(state, policy.steps.length, target);
    if (verification) status.weightVerified = verification;
    await this.persist(deployment, status, statusText, hasActionAnnotation, effects, log);
    lap('persist');
    return { phase: state.phase, trafficUpdates, timings, ...(advanced.wakeAt === undefined ? {} : { wakeAt: advanced.wakeAt }) };
  }

  private async markInvalid(deployment: V1Deployment, stored: RolloutStatus | undefined, policyName: string, policy: Policy | undefined, problem: string, fixable: boolean, consumeAction: boolean, now: number, log: Logger): Promise<ReconcileOutcome> {
    if (stored?.phase === 'Invalid' && stored.message === problem && !consumeAction) return { phase: 'Invalid' };
    const t = stored ? transition(policy ?? this.fallbackPolicy, stored, { type: 'invalid', now, message: problem }) : invalidRollout(policyName, problem, now);
    const effects: RolloutEffect[] = [...t.effects];
    if (consumeAction) effects.push({ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: `${deployment.metadata?.annotations?.[ANNOTATION.action]} ignored: ${problem}` });
    const status = toStatus(t.state, policy?.steps.length ?? stored?.steps ?? 0, stored?.target, fixable && t.state.phase === 'Invalid');
    log.warn({ problem }, 'rollout input is invalid; traffic left as it is');
    await this.persist(deployment, status, deployment.metadata?.annotations?.[ANNOTATION.status], consumeAction, effects, log);
    return { phase: t.state.phase, trafficUpdates: 0 };
  }

  /** Applies only the last weight (and mirror) of this reconcile: one VirtualService write per kind. */
  private async applyTraffic(namespace: string, target: RolloutTarget, effects: RolloutEffect[], log: Logger): Promise<{ writes: number; verification?: WeightVerification }> {
    const weight = effects.findLast((e) => e.type === 'set-weight');
    const mirror = effects.findLast((e) => e.type === 'set-mirror');
    if (!weight && !mirror) return { writes: 0 };
    const router = this.deps.routerFor(namespace, target);
    let writes = 0;
    if (mirror?.type === 'set-mirror') {
      await router.setMirror(mirror.percent);
      writes++;
    }
    if (weight?.type === 'set-weight') {
      await router.setWeight(weight.weight);
      log.info({ virtualService: target.virtualService, canaryWeight: weight.weight, canary: target.canarySubset, stable: target.stableSubset }, 'canary weight set');
      writes++;
      const verification = await verifyLiveWeight(router, weight.weight, this.deps.clock);
      if (verification) log.info({ virtualService: target.virtualService, ...verification }, verification.verified ? 'canary weight live in the proxies' : 'canary weight not confirmed in the proxies');
      return verification ? { writes, verification } : { writes };
    }
    return { writes };
  }

  private async persist(deployment: V1Deployment, status: RolloutStatus, previousText: string | undefined, consumeAction: boolean, effects: RolloutEffect[], log: Logger): Promise<void> {
    const text = serializeStatus(status);
    if (text !== previousText || consumeAction) await this.deps.store.write(deployment, status, consumeAction);
    const events: RolloutEventRecord[] = effects.flatMap((e) => (e.type === 'event' ? [{ severity: e.severity, reason: e.reason, message: e.message }] : []));
    for (const ev of events) log.info({ reason: ev.reason, phase: status.phase, step: status.step, weight: status.weight }, ev.message);
    // Events are the story, the status is the record: they are written in order, in the background.
    if (events.length) this.deps.events.enqueue(deployment, events);
  }
}
