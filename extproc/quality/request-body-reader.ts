import type { Logger } from '../../common/logger.js';
import { NOTHING_READ, readRequestBody, type ReadRequestBody } from './read-request-body.js';
import { QualityThread, type QualityThreadOptions } from './quality-thread.js';

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
 * on the quality worker thread (about 4 ms a megabyte there), so routing decisions never wait
 * behind them on the event loop. Measured by `make bench` (body_p99_delta_ms).
 */
export const INLINE_BODY_BYTES = 64 * 1024;

export type BodyReadResult = 'read' | 'error' | 'timeout';

export interface BodyReaderOptions extends QualityThreadOptions {
  /** Counts each body read, by where and how it went. */
  count?: (reader: 'inline' | 'worker', result: BodyReadResult) => void;
  inlineBytes?: number;
  /** The thread to use (extproc's one quality thread); without it the reader starts its own. */
  thread?: QualityThread;
}

/**
 * A body the thread cannot read (it died, or took past its timeout) is read as nothing: the
 * sample loses its request facts, the request itself is untouched.
 */
export class OffThreadBodyReader implements RequestBodyReader {
  private readonly thread: QualityThread;
  private readonly ownsThread: boolean;
  private readonly count: (reader: 'inline' | 'worker', result: BodyReadResult) => void;
  private readonly inlineBytes: number;

  constructor(
    private readonly longestGoldenKey: number,
    private readonly log: Logger,
    options: BodyReaderOptions = {},
  ) {
    this.count = options.count ?? (() => undefined);
    this.inlineBytes = options.inlineBytes ?? INLINE_BODY_BYTES;
    this.ownsThread = options.thread === undefined;
    this.thread = options.thread ?? new QualityThread(longestGoldenKey, log, options);
  }

  read(body: Buffer, mayRewrite: boolean): ReadRequestBody | Promise<ReadRequestBody> {
    if (body.length <= this.inlineBytes) {
      this.count('inline', 'read');
      return readRequestBody(body, mayRewrite, this.longestGoldenKey);
    }
    // A copy with its own ArrayBuffer to hand over: the message's Buffer is a view into gRPC's.
    const copy = new Uint8Array(body);
    return this.thread.run<'request-body'>({ kind: 'request-body', body: copy, mayRewrite }, [copy.buffer]).then((outcome) => {
      if (!outcome.ok) {
        if (outcome.why === 'error') this.log.warn({ error: outcome.message }, 'the quality worker could not read a request body; its sample goes without request facts');
        this.count('worker', outcome.why);
        return NOTHING_READ;
      }
      this.count('worker', 'read');
      const { facts, goldenKey, usageRewrite: rewrite } = outcome.answer;
      return { facts, goldenKey, usageRewrite: rewrite ? Buffer.from(rewrite.buffer, rewrite.byteOffset, rewrite.byteLength) : undefined };
    });
  }

  async close(): Promise<void> {
    if (this.ownsThread) await this.thread.close();
  }
}
