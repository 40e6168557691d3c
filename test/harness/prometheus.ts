import { startPrometheus as start, type RunningPrometheus } from '../../local/prometheus.js';

export type { RunningPrometheus };

/** A real Prometheus on a free port with a throw-away TSDB, scraping `targets`. */
export function startPrometheus(targets: string[], scrapeIntervalMs = 1000): Promise<RunningPrometheus> {
  return start({ targets, scrapeIntervalMs });
}
