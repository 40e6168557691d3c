/**
 * Local mode's controller loop: keeps the rollouts file's entries in sync (watched) and
 * feeds the shared reconcile queue (controller/reconcile/work-queue.ts, as cluster mode):
 * one reconcile at a time per rollout, again at the engine's wake-up, when an action file
 * appears (watched, with a short poll as a safety net), or after a failure (a back-off).
 * Everything it needs to resume lives in the state dir, so a restarted runner carries on
 * where the last one stopped.
 */
import { watch, type FSWatcher } from 'node:fs';
import { parseStructured } from '../../common/structured-file.js';
import { WatchedFile } from '../../common/watched-file.js';
import type { Logger } from '../../common/logger.js';
import type { RolloutPhase } from '../engine/rollout-state.js';
import type { ControllerMetrics } from '../kube/controller-metrics.js';
import { ReconcileQueue } from '../reconcile/work-queue.js';
import type { ActionFiles } from './action-files.js';
import type { LocalPolicyLookup, LocalReconcileOutcome, LocalReconciler } from './local-reconciler.js';
import { localPolicyLookup } from './local-policies.js';
import type { EvaluatorInventory } from '../policy/evaluator-coverage.js';
import { namedRollouts, rolloutsFileSchema, type LocalRolloutSpec } from './rollouts-file.js';

export interface LocalRunnerOptions {
  rolloutsFile: string;
  reconciler: LocalReconciler;
  actions: ActionFiles;
  /** What the stack's evaluators produce; a rollout whose policy reads a metric none produces is Invalid. */
  inventory?: EvaluatorInventory;
  /** Receives the policy lookup of every good version of the rollouts file. */
  onPolicies: (lookup: LocalPolicyLookup) => void;
  metrics: ControllerMetrics;
  logger: Logger;
  actionPollMs?: number;
  retryMs?: number;
}

const CONCURRENCY = 4;

export class LocalRolloutRunner {
  private specs = new Map<string, LocalRolloutSpec>();
  private readonly phases = new Map<string, RolloutPhase>();
  private readonly queue: ReconcileQueue<LocalReconcileOutcome | undefined>;
  private file: WatchedFile<LocalRolloutSpec[]> | undefined;
  private actionWatcher: FSWatcher | undefined;
  private actionPoll: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Rollouts of the first file version not yet reconciled once (successfully or not). */
  private firstPass: Set<string> | undefined;
  private firstPassDone: (() => void) | undefined;
  /** True once every rollout of the first file version was reconciled once. */
  synced = false;

  constructor(private readonly o: LocalRunnerOptions) {
    this.queue = new ReconcileQueue((name) => this.reconcileOnce(name), {
      concurrency: CONCURRENCY,
      nextRunAt: (_name, outcome) => outcome?.wakeAt,
      onError: (name, err, attempt) => o.logger.error({ rollout: name, attempt, err: (err as Error).message }, 'reconcile failed; trying again'),
      maxBackoffMs: o.retryMs ?? 2000,
    });
  }

  async start(): Promise<void> {
    const { o } = this;
    o.actions.ensure();
    this.file = new WatchedFile({
      file: o.rolloutsFile,
      logger: o.logger,
      pollMs: 1000,
      parse: (text) => {
        const file = parseStructured(text, rolloutsFileSchema, o.rolloutsFile);
        const specs = namedRollouts(file, o.rolloutsFile);
        o.onPolicies(localPolicyLookup(file, o.rolloutsFile, o.inventory));
        return specs;
      },
      onValue: (specs) => this.setSpecs(specs),
    });
    await this.file.start();
    try {
      this.actionWatcher = watch(o.actions.dir, () => this.kickPendingActions());
      this.actionWatcher.on('error', (err) => o.logger.warn({ err: err.message }, 'watching the actions dir failed; polling only'));
    } catch (err) {
      o.logger.warn({ err: (err as Error).message, dir: o.actions.dir }, 'cannot watch the actions dir; polling only');
    }
    this.actionPoll = setInterval(() => this.kickPendingActions(), o.actionPollMs ?? 500);
    // Ready once each rollout had its first reconcile, even if that one failed and is retried.
    const pending = this.firstPass ?? new Set<string>();
    if (pending.size) await new Promise<void>((resolve) => (this.firstPassDone = resolve));
    this.synced = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.file?.stop();
    this.actionWatcher?.close();
    if (this.actionPoll) clearInterval(this.actionPoll);
    await this.queue.stop();
  }

  private setSpecs(specs: LocalRolloutSpec[]): void {
    const next = new Map(specs.map((s) => [s.name, s]));
    for (const name of this.specs.keys()) {
      if (next.has(name)) continue;
      this.queue.cancel(name);
      this.firstReconcileDone(name);
      this.phases.delete(name);
      this.o.metrics.setPhase(name, undefined);
      this.o.logger.info({ rollout: name }, 'rollout removed from the rollouts file; its state stays in the state dir');
    }
    this.specs = next;
    this.firstPass ??= new Set(next.keys());
    // Every entry is looked at again: its policy, target or candidate may have changed.
    for (const name of next.keys()) this.queue.enqueue(name);
  }

  private kickPendingActions(): void {
    if (this.stopped) return;
    try {
      for (const name of this.o.actions.pending()) {
        if (this.specs.has(name)) this.queue.enqueue(name);
      }
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'listing pending actions failed');
    }
  }

  private async reconcileOnce(name: string): Promise<LocalReconcileOutcome | undefined> {
    const spec = this.specs.get(name);
    if (!spec) return undefined;
    const { o } = this;
    const started = performance.now();
    try {
      const outcome = await o.reconciler.reconcile(spec).finally(() => this.firstReconcileDone(name));
      o.metrics.reconcileSeconds.observe({ result: 'ok' }, (performance.now() - started) / 1000);
      o.metrics.setPhase(name, outcome.phase);
      if (this.phases.get(name) !== outcome.phase) o.logger.info({ rollout: name, phase: outcome.phase }, 'rollout phase');
      this.phases.set(name, outcome.phase);
      return outcome;
    } catch (err) {
      o.metrics.reconcileSeconds.observe({ result: 'error' }, (performance.now() - started) / 1000);
      throw err;
    }
  }

  private firstReconcileDone(name: string): void {
    if (!this.firstPass?.delete(name) || this.firstPass.size) return;
    this.firstPassDone?.();
  }
}
