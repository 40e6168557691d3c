/**
 * A keyed reconcile queue, for both hosts (the Kubernetes controller and local mode): a key
 * is never reconciled twice at once (a change arriving meanwhile re-queues it once), at most
 * `concurrency` keys run together, and each key has at most one timer (the engine's next
 * wake-up, a short requeue, or an error back-off).
 */
import type { Logger } from '../../common/logger.js';

export type Worker<R> = (key: string) => Promise<R>;

export interface QueueOptions<R> {
  concurrency: number;
  /** After a successful run: when to run the key again (epoch ms), if ever. */
  nextRunAt: (key: string, result: R) => number | undefined;
  onError: (key: string, err: unknown, attempt: number) => void;
  clock?: () => number;
  maxBackoffMs?: number;
}

/** setTimeout's limit; a later wake-up is re-armed when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ReconcileQueue<R> {
  private readonly pending: string[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private stopped = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly worker: Worker<R>,
    private readonly options: QueueOptions<R>,
    private readonly logger?: Logger,
  ) {}

  enqueue(key: string): void {
    if (this.stopped) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.pending.push(key);
    this.pump();
  }

  /** Runs the key at `at` (epoch ms), replacing any timer it had. */
  scheduleAt(key: string, at: number): void {
    if (this.stopped) return;
    this.cancel(key);
    const delay = Math.max(0, at - (this.options.clock ?? Date.now)());
    const timer = setTimeout(() => {
      this.timers.delete(key);
      if (delay > MAX_TIMER_MS) this.scheduleAt(key, at);
      else this.enqueue(key);
    }, Math.min(delay, MAX_TIMER_MS));
    timer.unref?.();
    this.timers.set(key, timer);
  }

  cancel(key: string): void {
    const timer = this.timers.get(key);
    if (timer) clearTimeout(timer);
    this.timers.delete(key);
  }

  /** Stops timers and new work; resolves when running reconciles have finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const key of [...this.timers.keys()]) this.cancel(key);
    this.pending.length = 0;
    this.queued.clear();
    if (this.running.size) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  get size(): number {
    return this.pending.length + this.running.size;
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.options.concurrency && this.pending.length) {
      const key = this.pending.shift()!;
      this.queued.delete(key);
      this.running.add(key);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.worker(key);
      this.failures.delete(key);
      const at = this.options.nextRunAt(key, result);
      if (at !== undefined) this.scheduleAt(key, at);
      else if (!this.dirty.has(key)) this.cancel(key);
    } catch (err) {
      const attempt = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, attempt);
      this.options.onError(key, err, attempt);
      const backoff = Math.min(this.options.maxBackoffMs ?? 30_000, 250 * 2 ** (attempt - 1));
      this.scheduleAt(key, (this.options.clock ?? Date.now)() + backoff);
    } finally {
      this.running.delete(key);
      if (this.dirty.delete(key)) this.enqueue(key);
      if (this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      this.pump();
    }
  }
}
