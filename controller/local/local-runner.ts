/**
 * Local mode's controller loop: keeps the rollouts file's entries in sync (watched), runs
 * one reconcile at a time per rollout, and comes back when the engine asks (a timer per
 * rollout at its wakeAt), when an action file appears (watched, with a short poll as a
 * safety net), or after a failure (a back-off). Everything it needs to resume lives in the
 * state dir, so a restarted runner carries on where the last one stopped.
 */
import { watch, type FSWatcher } from 'node:fs';
import { parseStructured } from '../../common/structured-file.js';
import { WatchedFile } from '../../common/watched-file.js';
import type { Logger } from '../../common/logger.js';
import type { RolloutPhase } from '../engine/rollout-state.js';
import type { ControllerMetrics } from '../kube/controller-metrics.js';
import type { ActionFiles } from './action-files.js';
import type { LocalPolicyLookup, LocalReconciler } from './local-reconciler.js';
import { localPolicyLookup } from './local-policies.js';
import { namedRollouts, rolloutsFileSchema, type LocalRolloutSpec } from './rollouts-file.js';

export interface LocalRunnerOptions {
  rolloutsFile: string;
  reconciler: LocalReconciler;
  actions: ActionFiles;
  /** Receives the policy lookup of every good version of the rollouts file. */
  onPolicies: (lookup: LocalPolicyLookup) => void;
  metrics: ControllerMetrics;
  logger: Logger;
  actionPollMs?: number;
  retryMs?: number;
}

/** setTimeout's limit; later wake-ups are re-armed when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LocalRolloutRunner {
  private specs = new Map<string, LocalRolloutSpec>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly phases = new Map<string, RolloutPhase>();
  private file: WatchedFile<LocalRolloutSpec[]> | undefined;
  private actionWatcher: FSWatcher | undefined;
  private actionPoll: NodeJS.Timeout | undefined;
  private stopped = false;
  /** True once every rollout of the first file version was reconciled once. */
  synced = false;

  constructor(private readonly o: LocalRunnerOptions) {}

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
        o.onPolicies(localPolicyLookup(file, o.rolloutsFile));
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
    await Promise.all([...this.specs.keys()].map((name) => this.running.get(name)));
    this.synced = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.file?.stop();
    this.actionWatcher?.close();
    if (this.actionPoll) clearInterval(this.actionPoll);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.all(this.running.values());
  }

  private setSpecs(specs: LocalRolloutSpec[]): void {
    const next = new Map(specs.map((s) => [s.name, s]));
    for (const name of this.specs.keys()) {
      if (next.has(name)) continue;
      clearTimeout(this.timers.get(name));
      this.timers.delete(name);
      this.phases.delete(name);
      this.o.metrics.setPhase(name, undefined);
      this.o.logger.info({ rollout: name }, 'rollout removed from the rollouts file; its state stays in the state dir');
    }
    this.specs = next;
    // Every entry is looked at again: its policy, target or candidate may have changed.
    for (const name of next.keys()) this.kick(name);
  }

  private kickPendingActions(): void {
    if (this.stopped) return;
    try {
      for (const name of this.o.actions.pending()) {
        if (this.specs.has(name)) this.kick(name);
      }
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'listing pending actions failed');
    }
  }

  /** Reconciles `name` now, or right after the reconcile in progress. */
  private kick(name: string): void {
    if (this.stopped) return;
    if (this.running.has(name)) {
      this.again.add(name);
      return;
    }
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    const run = this.reconcileOnce(name).finally(() => {
      this.running.delete(name);
      if (this.again.delete(name)) this.kick(name);
    });
    this.running.set(name, run);
  }

  private async reconcileOnce(name: string): Promise<void> {
    const spec = this.specs.get(name);
    if (!spec) return;
    const { o } = this;
    const started = performance.now();
    try {
      const outcome = await o.reconciler.reconcile(spec);
      o.metrics.reconcileSeconds.observe({ result: 'ok' }, (performance.now() - started) / 1000);
      o.metrics.setPhase(name, outcome.phase);
      if (this.phases.get(name) !== outcome.phase) o.logger.info({ rollout: name, phase: outcome.phase }, 'rollout phase');
      this.phases.set(name, outcome.phase);
      if (outcome.wakeAt !== undefined) this.schedule(name, outcome.wakeAt);
    } catch (err) {
      o.metrics.reconcileSeconds.observe({ result: 'error' }, (performance.now() - started) / 1000);
      const retryMs = o.retryMs ?? 2000;
      o.logger.error({ rollout: name, err: (err as Error).message, retryInMs: retryMs }, 'reconcile failed; trying again');
      this.schedule(name, Date.now() + retryMs);
    }
  }

  private schedule(name: string, at: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(name));
    const delay = Math.max(0, at - Date.now());
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        if (delay > MAX_TIMER_MS) this.schedule(name, at);
        else this.kick(name);
      }, Math.min(delay, MAX_TIMER_MS)),
    );
  }
}
