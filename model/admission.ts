/**
 * Hands out a fixed set of resources (the model's context sequences): at most one request
 * per resource, up to `queueLimit` more waiting in arrival order, and a refusal beyond that,
 * so an overloaded server answers 429 at once instead of growing an unbounded queue.
 */
export class Admission<T> {
  private readonly free: T[];
  private readonly capacity: number;
  private readonly waiting: { resolve: (item: T) => void; reject: (err: Error) => void }[] = [];

  constructor(
    items: readonly T[],
    readonly queueLimit: number,
  ) {
    this.free = [...items];
    this.capacity = items.length;
  }

  get queued(): number {
    return this.waiting.length;
  }

  get busy(): number {
    return this.capacity - this.free.length;
  }

  /**
   * A resource, now or after waiting; undefined when every resource is busy and the queue
   * is full. A waiter whose signal aborts leaves the queue (its promise rejects).
   */
  acquire(signal?: AbortSignal): Promise<T> | undefined {
    const item = this.free.pop();
    if (item !== undefined) return Promise.resolve(item);
    if (this.waiting.length >= this.queueLimit) return undefined;
    if (signal?.aborted) return Promise.reject(new Error('request went away while queued'));
    return new Promise<T>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.waiting.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) {
            this.waiting.splice(at, 1);
            reject(new Error('request went away while queued'));
          }
        },
        { once: true },
      );
    });
  }

  release(item: T): void {
    const next = this.waiting.shift();
    if (next) next.resolve(item);
    else this.free.push(item);
  }
}
