import { Worker } from 'node:worker_threads';
import type { Logger } from '../../common/logger.js';
import type { RequestFacts } from './openai-request.js';
import { NOTHING_READ, readRequestBody, type ReadRequestBody } from './read-request-body.js';
import type { BodyJob } from './request-body-worker.js';

/** Reads sampled request bodies for the request-body processor. */
export interface RequestBodyReader {
  read(body: Buffer, mayRewrite: boolean): ReadRequestBody | Promise<ReadRequestBody>;
  close(): Promise<void>;
}

/** Everything on the calling thread: for tests and tools, never for a serving extproc. */
export function inlineBodyReader(longestGoldenKey: number): RequestBodyReader {
  return { read: (body, mayRewrite) => readRequestBody(body, mayRewrite, longestGoldenKey), close: async () => undefined };
}

/**
 * Bodies up to 64 KiB are parsed where they arrive (a fraction of a millisecond); larger ones
 * on a worker thread (about 4 ms a megabyte there), so routing decisions never wait behind
 * them on the event loop. Measured by `make bench` (body_p99_delta_ms).
 */
export const INLINE_BODY_BYTES = 64 * 1024;
/** Past this the body's phase has long passed Envoy's message_timeout: the worker is restarted. */
const WORKER_TIMEOUT_MS = 5_000;
const DEFAULT_WORKER_URL = new URL('./request-body-worker.js', import.meta.url);

interface WorkerAnswer {
  id: number;
  facts?: RequestFacts;
  goldenKey?: string;
  usageRewrite?: Uint8Array;
  error?: string;
}

export type BodyReadResult = 'read' | 'error' | 'timeout';

export interface BodyReaderOptions {
  /** Counts each body read, by where and how it went. */
  count?: (reader: 'inline' | 'worker', result: BodyReadResult) => void;
  /** The worker's script (tests running the TypeScript sources point it at the build). */
  workerUrl?: URL;
  inlineBytes?: number;
  timeoutMs?: number;
  /** Start the worker now rather than on the first large body (extproc does: a thread's start would eat into Envoy's 200 ms message_timeout). */
  eager?: boolean;
}

interface PendingRead {
  resolve(read: ReadRequestBody): void;
  timer: NodeJS.Timeout;
}

/**
 * One worker thread, started with the reader (`eager`) or on the first large body, and again
 * on the first large body after a failure (never in a loop: a worker that cannot start costs
 * one attempt per large body, each read as nothing). A body the
 * worker cannot read (it died, or took past WORKER_TIMEOUT_MS) is read as nothing: the sample
 * loses its request facts, the request itself is untouched.
 */
export class OffThreadBodyReader implements RequestBodyReader {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, PendingRead>();
  private nextId = 0;

  private readonly count: (reader: 'inline' | 'worker', result: BodyReadResult) => void;
  private readonly workerUrl: URL;
  private readonly inlineBytes: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly longestGoldenKey: number,
    private readonly log: Logger,
    options: BodyReaderOptions = {},
  ) {
    this.count = options.count ?? (() => undefined);
    this.workerUrl = options.workerUrl ?? DEFAULT_WORKER_URL;
    this.inlineBytes = options.inlineBytes ?? INLINE_BODY_BYTES;
    this.timeoutMs = options.timeoutMs ?? WORKER_TIMEOUT_MS;
    if (options.eager) this.startWorker();
  }

  read(body: Buffer, mayRewrite: boolean): ReadRequestBody | Promise<ReadRequestBody> {
    if (body.length <= this.inlineBytes) {
      this.count('inline', 'read');
      return readRequestBody(body, mayRewrite, this.longestGoldenKey);
    }
    const worker = this.worker ?? this.startWorker();
    const id = this.nextId++;
    // A copy with its own ArrayBuffer to hand over: the message's Buffer is a view into gRPC's.
    const copy = new Uint8Array(body);
    const job: BodyJob = { id, body: copy, mayRewrite };
    return new Promise<ReadRequestBody>((resolve) => {
      const timer = setTimeout(() => this.giveUp('timeout', `no answer from the request-body worker in ${this.timeoutMs} ms`), this.timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      worker.postMessage(job, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.settleAll();
    await worker?.terminate();
  }

  private startWorker(): Worker {
    const worker = new Worker(this.workerUrl, { workerData: { longestGoldenKey: this.longestGoldenKey } });
    worker.unref(); // pending reads have their own timers; the worker never holds the process open
    worker.on('message', (answer: WorkerAnswer) => this.settle(answer));
    worker.on('error', (err) => {
      if (this.worker === worker) this.giveUp('error', `request-body worker failed: ${err.message}`);
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.giveUp('error', `request-body worker exited with code ${code}`);
    });
    this.worker = worker;
    return worker;
  }

  private settle(answer: WorkerAnswer): void {
    const pending = this.pending.get(answer.id);
    if (!pending) return;
    this.pending.delete(answer.id);
    clearTimeout(pending.timer);
    if (answer.error !== undefined) {
      this.log.warn({ error: answer.error }, 'the request-body worker could not read a body; its sample goes without request facts');
      this.count('worker', 'error');
      pending.resolve(NOTHING_READ);
      return;
    }
    this.count('worker', 'read');
    const rewrite = answer.usageRewrite;
    pending.resolve({
      facts: answer.facts,
      goldenKey: answer.goldenKey,
      usageRewrite: rewrite ? Buffer.from(rewrite.buffer, rewrite.byteOffset, rewrite.byteLength) : undefined,
    });
  }

  /** The worker is dropped (a fresh one starts with the next large body); every read waiting on it is read as nothing. */
  private giveUp(why: 'error' | 'timeout', message: string): void {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) void worker.terminate();
    this.log.warn({ pending: this.pending.size }, `${message}; bodies waiting on it are read as nothing`);
    for (let i = 0; i < this.pending.size; i++) this.count('worker', why);
    this.settleAll();
  }

  private settleAll(): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve(NOTHING_READ);
    }
    this.pending.clear();
  }
}
