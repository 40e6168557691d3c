import type { CoverageReport } from '../../common/evaluator-coverage-report.js';
import type { QualityConfig } from './config.js';
import type { GoldenSet } from './evaluators/golden-set.js';

export interface CoverageInputs {
  config: QualityConfig;
  /** undefined when quality is off. */
  golden: GoldenSet | undefined;
  probeSecretConfigured: boolean;
  /** service → verified probes answered (from fledge_probe_requests_total). */
  probesSeen: Record<string, number>;
  /** Shadow capture runs (its pairs can go to the pairwise judge). */
  shadowCapture?: boolean;
}

/** What this extproc's evaluators produce, per service: the body of GET /coverage. */
export function coverageReport(i: CoverageInputs): CoverageReport {
  const enabled = i.config.enabled;
  const entries = enabled ? (i.golden?.entries ?? []) : [];
  const services: Record<string, number> = {};
  let anyService = 0;
  for (const e of entries) {
    if (e.service === undefined) anyService++;
    else services[e.service] = (services[e.service] ?? 0) + 1;
  }
  return {
    quality: enabled,
    golden: { file: enabled ? (i.config.golden.file ?? null) : null, entries: entries.length, anyService, services, inspect: i.config.golden.inspect },
    probes: { verified: i.probeSecretConfigured, seen: i.probesSeen },
    judge: judgeCoverage(i),
    modelReported: { services: enabled ? i.config.modelReported.services : [] },
    format: enabled,
  };
}

function judgeCoverage(i: CoverageInputs): CoverageReport['judge'] {
  const configured = i.config.enabled && i.config.judge.redisUrl !== undefined;
  return { configured, stream: configured ? i.config.judge.stream : null, pairStream: configured && i.shadowCapture === true ? i.config.judge.pairStream : null };
}
