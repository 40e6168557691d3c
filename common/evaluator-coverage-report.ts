/**
 * The evaluator-coverage report extproc publishes on its admin port (GET /coverage) and the
 * cluster controller reads when a rollout starts: which evaluators extproc runs, and for
 * which services, so a policy metric nothing produces is named at start (the controller
 * cannot read extproc's config in the cluster). One schema for the writer and the reader.
 */
import { z } from 'zod';

export const COVERAGE_PATH = '/coverage';

export const coverageReportSchema = z.object({
  /** false: quality sampling is off, no evaluator runs. */
  quality: z.boolean(),
  golden: z.object({
    /** The golden set file; null without one (golden probes then go unscored). */
    file: z.string().nullable(),
    entries: z.number().int().min(0),
    /** Entries without `service`: they cover every service. */
    anyService: z.number().int().min(0),
    /** service → entries naming it. */
    services: z.record(z.string(), z.number().int().min(0)),
    /** `all` or `sampled` (quality.golden.inspect). */
    inspect: z.string(),
  }),
  probes: z.object({
    /** A probe secret is configured: verified golden probes are pinned and scored. */
    verified: z.boolean(),
    /** service → verified probes this replica answered since it started. */
    seen: z.record(z.string(), z.number().min(0)),
  }),
  judge: z.object({
    configured: z.boolean(),
    stream: z.string().nullable(),
    /** Shadow pairs go to the pairwise judge on this stream (judge configured and shadow capture on); null otherwise, and from extprocs that predate it. */
    pairStream: z.string().nullable().default(null),
  }),
  modelReported: z.object({ services: z.array(z.string()) }),
  /** JSON format validity scores the answers of requests that asked for JSON (always on). */
  format: z.boolean(),
});

export type CoverageReport = z.output<typeof coverageReportSchema>;

/** Whether the report's golden set has an entry for the service. */
export function goldenCovers(report: CoverageReport, service: string): boolean {
  return report.golden.anyService > 0 || (report.golden.services[service] ?? 0) > 0;
}
