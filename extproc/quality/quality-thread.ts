/**
 * The quality worker thread (quality-worker.ts): large request bodies, large JSON responses
 * and the evaluation of long answers go there, so a JSON.parse of a megabyte, or a golden
 * regex over a long answer, never holds up the routing decisions on extproc's event loop.
 * One thread, started with extproc (a thread's start would eat into Envoy's message_timeout)
 * or on the first job, and again on the first job after a failure (never in a loop). A job
 * the thread cannot do (it died, or gave no answer within the timeout) ends as 'error' or
 * 'timeout' and the caller goes on without its result.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../common/logger.js';
import type { WorkerAnswer, WorkerJob } from './quality-worker.js';

/** Past this a job's request has long been answered: the thread is restarted. */
export const WORKER_TIMEOUT_MS = 5_000;
const DEFAULT_WORKER_URL = new URL('./quality-worker.js', import.meta.url);

export type JobFailure = 'error' | 'timeout';
export type JobOutcome<K extends WorkerJob['kind']> = { ok: true; answer: Extract<WorkerAnswer, { kind: K }> } | { ok: false; why: JobFailure; message: string };

export interface QualityThreadOptions {
  /** The worker's script (tests running the TypeScript sources point it at the build). */
  workerUrl?: URL;
  timeoutMs?: number;
  /** Start the thread now rather than on the first job. */
  eager?: boolean;
}

interface Pending {
  settle(outcome: JobOutcome<WorkerJob['kind']>): void;
  timer: NodeJS.Timeout;
}

export class QualityThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private readonly workerUrl: URL;
  private readonly timeoutMs: number;

  constructor(
    private readonly longestGoldenKey: number,
    private readonly log: Logger,
    options: QualityThreadOptions = {},
  ) {
    this.workerUrl = options.workerUrl ?? DEFAULT_WORKER_URL;
    this.timeoutMs = options.timeoutMs ?? WORKER_TIMEOUT_MS;
    if (options.eager) this.startWorker();
  }

  /** Runs a job (its buffers in `transfer` are handed over, not copied). Never rejects. */
  run<K extends WorkerJob['kind']>(job: Omit<Extract<WorkerJob, { kind: K }>, 'id'>, transfer: ArrayBuffer[] = []): Promise<JobOutcome<K>> {
    const worker = this.worker ?? this.startWorker();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.giveUp('timeout', `no answer from the quality worker in ${this.timeoutMs} ms`), this.timeoutMs);
      timer.unref();
      this.pending.set(id, { settle: resolve as Pending['settle'], timer });
      try {
        worker.postMessage({ ...job, id }, transfer);
      } catch (err) {
        // A job that cannot be sent (a detached buffer, a value that does not clone) fails alone.
        this.settle({ id, error: `the job could not be sent to the quality worker: ${err instanceof Error ? err.message : String(err)}` });
      }
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll('error', 'extproc is stopping');
    await worker?.terminate();
  }

  private startWorker(): Worker {
    const worker = new Worker(this.workerUrl, { workerData: { longestGoldenKey: this.longestGoldenKey } });
    worker.unref(); // pending jobs have their own timers; the thread never holds the process open
    worker.on('message', (answer: WorkerAnswer | { id: number; error: string }) => this.settle(answer));
    worker.on('error', (err) => {
      if (this.worker === worker) this.giveUp('error', `quality worker failed: ${err.message}`);
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.giveUp('error', `quality worker exited with code ${code}`);
    });
    this.worker = worker;
    return worker;
  }

  private settle(answer: WorkerAnswer | { id: number; error: string }): void {
    const pending = this.pending.get(answer.id);
    if (!pending) return;
    this.pending.delete(answer.id);
    clearTimeout(pending.timer);
    if ('error' in answer) pending.settle({ ok: false, why: 'error', message: answer.error });
    else pending.settle({ ok: true, answer });
  }

  /** The thread is dropped (a fresh one starts with the next job); every job waiting on it fails. */
  private giveUp(why: JobFailure, message: string): void {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) void worker.terminate();
    this.log.warn({ pending: this.pending.size }, `${message}; the jobs waiting on it go without a result`);
    this.failAll(why, message);
  }

  private failAll(why: JobFailure, message: string): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.settle({ ok: false, why, message });
    }
    this.pending.clear();
  }
}
