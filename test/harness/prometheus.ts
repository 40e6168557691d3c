import { startPrometheus as start, type RunningPrometheus } from '../../local/prometheus.js';

export type { RunningPrometheus };

/** A real Prometheus on a free port with a throw-away TSDB, scraping `targets` (and Envoy admins' /stats/prometheus). */
export function startPrometheus(targets: string[], scrapeIntervalMs = 1000, envoyAdmins: string[] = []): Promise<RunningPrometheus> {
  return start({ targets, scrapeIntervalMs, ...(envoyAdmins.length ? { extraJobs: [{ name: 'envoy', targets: envoyAdmins, metricsPath: '/stats/prometheus' }] } : {}) });
}
