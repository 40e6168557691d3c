/** What `GET /admin/stats` returns. */
export interface SimStatsSnapshot {
  version: string;
  /** Chat completion requests answered (admin, health and model-list calls are not counted). */
  requests: number;
  /** Of those, answered with a status >= 400 (injected failures and bad requests). */
  errors: number;
  byStatus: Record<string, number>;
  /** Requests per `x-user-id` header value; requests without the header are not listed. */
  byUser: Record<string, number>;
}

/** Counters of chat completion traffic, counted when the response status is sent. */
export class SimStats {
  private requests = 0;
  private errors = 0;
  private byStatus = new Map<string, number>();
  private byUser = new Map<string, number>();

  record(status: number, user: string | undefined): void {
    this.requests++;
    if (status >= 400) this.errors++;
    bump(this.byStatus, String(status));
    if (user) bump(this.byUser, user);
  }

  reset(): void {
    this.requests = 0;
    this.errors = 0;
    this.byStatus.clear();
    this.byUser.clear();
  }

  snapshot(version: string): SimStatsSnapshot {
    return {
      version,
      requests: this.requests,
      errors: this.errors,
      byStatus: Object.fromEntries(this.byStatus),
      byUser: Object.fromEntries(this.byUser),
    };
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
