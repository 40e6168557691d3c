// extproc's /coverage report and the cluster controller's reading of it: which services each
// evaluator covers, and which policy metrics are then left without data.
import { describe, expect, it } from 'vitest';
import { coverageReportSchema } from '../../common/evaluator-coverage-report.js';
import { inventoryFromReport } from '../../controller/kube/extproc-coverage.js';
import { loadDefaultPolicy } from '../../controller/policy/load.js';
import { uncoveredMetrics } from '../../controller/policy/evaluator-coverage.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { coverageReport } from '../../extproc/quality/coverage-report.js';
import { GoldenSet } from '../../extproc/quality/evaluators/golden-set.js';

const golden = new GoldenSet([
  { id: 'a', service: 'chat', prompt: 'What is 2+2?', expect: { facts: ['4'] } },
  { id: 'b', service: 'chat', prompt: 'What is 3+3?', expect: { facts: ['6'] } },
] as never);
const report = (quality: unknown, probes = false) =>
  coverageReportSchema.parse(JSON.parse(JSON.stringify(coverageReport({ config: qualityConfigSchema.parse(quality), golden, probeSecretConfigured: probes, probesSeen: { chat: 3 } }))));
const policy = loadDefaultPolicy();
const uncovered = (r: ReturnType<typeof report>, service: string) => uncoveredMetrics(policy, service, inventoryFromReport(r)).map((u) => u.metric);

describe('evaluator coverage report', () => {
  it('counts golden entries per service and covers only those services', () => {
    const r = report({ golden: { file: '/golden.yaml' } }, true);
    expect(r.golden).toMatchObject({ file: '/golden.yaml', entries: 2, anyService: 0, services: { chat: 2 } });
    expect(r.probes).toEqual({ verified: true, seen: { chat: 3 } });
    expect(uncovered(r, 'chat')).toEqual([]);
    expect(uncovered(r, 'search')).toEqual(['quality-score', 'hallucination-rate']);
  });

  it('a judge covers every service; self-reports only the opted-in ones', () => {
    expect(uncovered(report({ judge: { redisUrl: 'redis://x' } }), 'search')).toEqual([]);
    const optIn = report({ modelReported: { services: ['search'] } });
    expect(uncovered(optIn, 'search')).toEqual([]);
    expect(uncovered(optIn, 'chat')).toEqual(['quality-score', 'hallucination-rate']);
  });

  it('with quality off nothing is covered, whatever is configured', () => {
    const r = report({ enabled: false, golden: { file: '/golden.yaml' }, judge: { redisUrl: 'redis://x' }, modelReported: { services: ['*'] } }, true);
    expect(r).toMatchObject({ quality: false, golden: { entries: 0, file: null }, judge: { configured: false } });
    expect(uncovered(r, 'chat')).toEqual(['quality-score', 'hallucination-rate']);
  });
});
