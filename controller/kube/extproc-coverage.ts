/**
 * The cluster controller's evaluator-coverage check. In the cluster the controller cannot
 * read extproc's config, so it asks extproc: GET /coverage on extproc's admin Service lists
 * the evaluators it runs per service (golden set, probes, judge, opted-in self-reports).
 * A policy metric none of them produces makes the rollout Invalid at its start, naming
 * metric and service, as local mode does. An unreadable report decides nothing (fail safe:
 * the analysis's own minimum samples still keep an unmeasured candidate from promotion).
 */
import { COVERAGE_PATH, coverageReportSchema, goldenCovers, type CoverageReport } from '../../common/evaluator-coverage-report.js';
import { uncoveredMetrics, type EvaluatorInventory } from '../policy/evaluator-coverage.js';
import type { Policy } from '../policy/policy.js';

/** What the controller can do with a report: produce coverage per service. */
export function inventoryFromReport(report: CoverageReport): EvaluatorInventory {
  const on = report.quality;
  const trusted = report.modelReported.services;
  return {
    goldenProbes: (service) => on && report.probes.verified && report.golden.file !== null && goldenCovers(report, service),
    goldenTraffic: (service) => on && report.golden.file !== null && goldenCovers(report, service),
    judge: on && report.judge.configured,
    pairwiseJudge: on && report.judge.configured && report.judge.pairStream !== null,
    modelReported: (service) => on && (trusted.includes('*') || trusted.includes(service)),
  };
}

export type CoverageVerdict = { kind: 'covered' } | { kind: 'uncovered'; problem: string } | { kind: 'unknown'; reason: string };

export interface ExtprocCoverageOptions {
  /** extproc's admin URL, e.g. http://fledge-extproc.fledge-system.svc.cluster.local:9101. */
  adminUrl: string;
  /** How long one read serves further checks (rollouts often start together). */
  reuseMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  clock?: () => number;
}

export class ExtprocCoverage {
  private last: { at: number; result: Promise<CoverageReport | Error> } | undefined;
  private readonly url: string;

  constructor(private readonly o: ExtprocCoverageOptions) {
    this.url = new URL(COVERAGE_PATH, o.adminUrl).toString();
  }

  /** The policy's metrics that extproc's evaluators leave without data for the service; `fresh` skips the shared recent read. */
  async check(policy: Policy, service: string, fresh = false): Promise<CoverageVerdict> {
    const report = await this.report(fresh);
    if (report instanceof Error) return { kind: 'unknown', reason: report.message };
    const uncovered = uncoveredMetrics(policy, service, inventoryFromReport(report));
    if (uncovered.length === 0) return { kind: 'covered' };
    return { kind: 'uncovered', problem: `${uncovered.map((u) => u.message).join('; ')} (evaluators as reported by extproc at ${this.url})` };
  }

  private report(fresh: boolean): Promise<CoverageReport | Error> {
    const now = (this.o.clock ?? Date.now)();
    if (!fresh && this.last && now - this.last.at < (this.o.reuseMs ?? 5_000)) return this.last.result;
    const result = this.read().catch((err: unknown) => new Error(`extproc's evaluator coverage (${this.url}) could not be read: ${causeText(err)}`));
    this.last = { at: now, result };
    return result;
  }

  private async read(): Promise<CoverageReport> {
    const res = await (this.o.fetch ?? fetch)(this.url, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 3_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const parsed = coverageReportSchema.safeParse(await res.json());
    if (!parsed.success) throw new Error(`unexpected report: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }
}

/** fetch's own message is "fetch failed"; the cause says why (ECONNREFUSED, a DNS error, a timeout). */
function causeText(err: unknown): string {
  const e = err as Error & { cause?: { message?: string; code?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message} (${cause})` : e.message;
}
