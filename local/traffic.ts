import http from 'node:http';

export interface TrafficUser {
  id: string;
  segment?: string;
}

export interface TrafficRequest {
  body: Record<string, unknown>;
  /** What the request is, for the summary (e.g. "golden", "stream", "chat"). */
  kind: string;
}

export interface TrafficOptions {
  port: number;
  /** The Host header: which service the requests are for. */
  host: string;
  /** Requests per second, sent on schedule whatever the answers (an open model). */
  rps: number;
  users: TrafficUser[];
  /** The i-th request's body. */
  request: (i: number, user: TrafficUser) => TrafficRequest;
  /** Beyond this many requests in flight new ones are counted as shed, not sent. */
  maxInFlight?: number;
}

export interface TrafficAnswer {
  /** When the request was sent, and when its answer ended (epoch ms). */
  sentAt: number;
  at: number;
  user: string;
  kind: string;
  status: number;
  servedBy: string | undefined;
  reason: string | undefined;
}

/**
 * Realistic traffic for the demo and its tests: many users in segments, a steady rate,
 * and a record of every answer, so a summary can say who got what and whether any
 * user-facing request failed.
 */
export class TrafficGenerator {
  readonly answers: TrafficAnswer[] = [];
  shed = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private sent = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: TrafficOptions) {}

  start(): void {
    const tickMs = 20;
    const started = Date.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((Date.now() - started) / 1000) * this.options.rps);
      while (this.sent < due) this.fire(this.sent++);
    }, tickMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.pending);
    this.agent.destroy();
  }

  /** Answers that failed the user: a 5xx, or no answer at all. */
  failures(since = 0): TrafficAnswer[] {
    return this.answers.filter((a) => a.at >= since && (a.status === 0 || a.status >= 500));
  }

  private fire(i: number): void {
    if (this.inFlight >= (this.options.maxInFlight ?? 200)) {
      this.shed++;
      return;
    }
    const user = this.options.users[i % this.options.users.length]!;
    const { body, kind } = this.options.request(i, user);
    this.inFlight++;
    const sentAt = Date.now();
    const done = this.send(user, body).then((answer) => {
      this.inFlight--;
      this.answers.push({ ...answer, sentAt, user: user.id, kind });
    });
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  private send(user: TrafficUser, body: Record<string, unknown>): Promise<Omit<TrafficAnswer, 'user' | 'kind' | 'sentAt'>> {
    const headers: Record<string, string> = { host: this.options.host, 'content-type': 'application/json', 'x-user-id': user.id };
    if (user.segment) headers['x-user-segment'] = user.segment;
    return new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: this.options.port, path: '/v1/chat/completions', method: 'POST', headers, agent: this.agent, timeout: 30_000 }, (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            at: Date.now(),
            status: res.statusCode ?? 0,
            servedBy: res.headers['x-model-version'] as string | undefined,
            reason: res.headers['x-fledge-reason'] as string | undefined,
          }),
        );
        res.on('error', () => resolve({ at: Date.now(), status: 0, servedBy: undefined, reason: undefined }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve({ at: Date.now(), status: 0, servedBy: undefined, reason: undefined }));
      req.end(JSON.stringify(body));
    });
  }
}
