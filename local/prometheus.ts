import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess, waitForHttp, type ManagedProcess } from './child-process.js';
import { freePort } from './ports.js';

export interface RunningPrometheus {
  url: string;
  process: ManagedProcess;
  /** Instant query; returns the vector's values (or the scalar) as numbers. */
  query(promql: string): Promise<number[]>;
  /** Waits until Prometheus has scraped every target at least `scrapes` more times. */
  waitForScrapes(scrapes?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each /metrics endpoint to scrape. */
  targets: string[];
  scrapeIntervalMs?: number;
  /** Defaults to a free port. */
  port?: number;
  /** Keep the TSDB here (it survives restarts); defaults to a temp dir removed on stop. */
  dataDir?: string;
  /** Endpoints served on another path, e.g. Envoy's admin /stats/prometheus. */
  extraJobs?: { name: string; targets: string[]; metricsPath: string }[];
}

/** Debian's package installs it on the PATH; FLEDGE_PROMETHEUS overrides. */
export function prometheusBinary(): string {
  return process.env.FLEDGE_PROMETHEUS ?? 'prometheus';
}

/**
 * A real Prometheus (Debian's package) on loopback scraping the given targets every
 * `scrapeIntervalMs`, with readiness checked on /-/ready.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const { targets, scrapeIntervalMs = 1000 } = options;
  const dir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'fledge-prom-'));
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const interval = `${scrapeIntervalMs}ms`;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      'scrape_configs:',
      '  - job_name: fledge',
      `    scrape_interval: ${interval}`,
      `    scrape_timeout: ${Math.min(scrapeIntervalMs, 1000)}ms`,
      '    static_configs:',
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      ...(options.extraJobs ?? []).flatMap((job) => [
        `  - job_name: ${JSON.stringify(job.name)}`,
        `    metrics_path: ${JSON.stringify(job.metricsPath)}`,
        `    scrape_interval: ${interval}`,
        `    scrape_timeout: ${Math.min(scrapeIntervalMs, 1000)}ms`,
        '    static_configs:',
        `      - targets: [${job.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      ]),
      '',
    ].join('\n'),
  );
  const proc = startProcess(
    'prometheus',
    prometheusBinary(),
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    join(dir, 'prometheus.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(proc, `${url}/-/ready`).catch(async (err: unknown) => {
    await proc.stop();
    throw err;
  });

  const query = async (promql: string): Promise<number[]> => {
    const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: promql }) });
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
    if (body.status !== 'success') throw new Error(`Prometheus query failed: ${body.error ?? res.status}: ${promql}`);
    const { resultType, result } = body.data!;
    if (resultType === 'scalar') return [Number((result as [number, string])[1])];
    return (result as { value: [number, string] }[]).map((r) => Number(r.value[1]));
  };

  const lastScrapes = async (): Promise<Map<string, number>> => {
    const res = await fetch(`${url}/api/v1/targets`);
    const body = (await res.json()) as { data: { activeTargets: { scrapeUrl: string; lastScrape: string; health: string }[] } };
    return new Map(body.data.activeTargets.map((t) => [t.scrapeUrl, Date.parse(t.lastScrape)]));
  };

  return {
    url,
    process: proc,
    query,
    async waitForScrapes(scrapes = 1) {
      // A scrape that started after this call saw everything recorded before it.
      const since = Date.now();
      const deadline = since + scrapes * scrapeIntervalMs + 15_000;
      for (;;) {
        const last = await lastScrapes();
        const done = [...last.values()].every((t) => t >= since + (scrapes - 1) * scrapeIntervalMs);
        if (last.size > 0 && done) return;
        if (Date.now() > deadline) throw new Error(`Prometheus did not scrape ${[...last.keys()].join(', ')} in time; log:\n${proc.logTail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      await proc.stop();
      if (!options.dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
