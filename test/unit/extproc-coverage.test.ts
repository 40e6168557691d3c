// extproc's /coverage report and the cluster controller's reading of it: which services each
// evaluator covers, and which policy metrics are then left without data.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { shadowPolicyYaml } from '../../controller/policy/default-policy.js';
import { coverageReportSchema } from '../../common/evaluator-coverage-report.js';
import { inventoryFromReport } from '../../controller/kube/extproc-coverage.js';
import { loadDefaultPolicy, loadPolicyText } from '../../controller/policy/load.js';
import { uncoveredMetrics } from '../../controller/policy/evaluator-coverage.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { coverageReport } from '../../extproc/quality/coverage-report.js';
import { GoldenSet } from '../../extproc/quality/evaluators/golden-set.js';

const golden = new GoldenSet([
  { id: 'a', service: 'chat', prompt: 'What is 2+2?', expect: { facts: ['4'] } },
  { id: 'b', service: 'chat', prompt: 'What is 3+3?', expect: { facts: ['6'] } },
] as never);
const report = (quality: unknown, probes = false, shadowCapture = false) =>
  coverageReportSchema.parse(JSON.parse(JSON.stringify(coverageReport({ config: qualityConfigSchema.parse(quality), golden, probeSecretConfigured: probes, probesSeen: { chat: 3 }, shadowCapture }))));
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

  it("a policy reading shadow preferences (docs/shadow.md's example, verbatim) needs the pairwise judge: the judge configured and shadow capture on", () => {
    const docs = readFileSync(new URL('../../docs/shadow.md', import.meta.url), 'utf8');
    const block = /```yaml\n( +# shadow-preference[^\n]*\n[\s\S]*?)```/u.exec(docs)?.[1];
    expect(block).toBeDefined();
    const spec = parseYaml(shadowPolicyYaml()) as { spec: { analysisTemplates: { metadata: { name: string }; spec: { metrics: unknown[] } }[] } };
    spec.spec.analysisTemplates.find((t) => t.metadata.name === 'shadow-check')!.spec.metrics.push(...(parseYaml(block!) as unknown[]));
    const withPreference = loadPolicyText(toYaml(spec), 'shadow-preference.yaml').policies.get('shadow-canary')!;
    const gaps = (r: ReturnType<typeof report>) => uncoveredMetrics(withPreference, 'chat', inventoryFromReport(r));
    const probesOnly = report({ golden: { file: '/golden.yaml' } }, true, true);
    expect(probesOnly.judge.pairStream).toBeNull();
    expect(gaps(probesOnly).map((u) => u.metric)).toEqual(['shadow-preference']);
    expect(gaps(probesOnly)[0]!.message).toMatch(/reads inference_shadow_preference_total, but no evaluator produces pairwise preferences of shadow pairs for service "chat": configure the LLM judge/);
    // A judge without shadow capture gets no pairs to judge.
    expect(gaps(report({ golden: { file: '/golden.yaml' }, judge: { redisUrl: 'redis://x' } }, true, false)).map((u) => u.metric)).toEqual(['shadow-preference']);
    const both = report({ golden: { file: '/golden.yaml' }, judge: { redisUrl: 'redis://x' } }, true, true);
    expect(both.judge).toEqual({ configured: true, stream: 'fledge:judge:samples', pairStream: 'fledge:judge:pairs' });
    expect(gaps(both)).toEqual([]);
    // The built-in shadow-canary does not read preferences: it needs no judge.
    expect(uncoveredMetrics(loadPolicyText(shadowPolicyYaml(), 'built-in').policies.get('shadow-canary')!, 'chat', inventoryFromReport(probesOnly))).toEqual([]);
  });

  it('reads a report from an extproc that predates the pairwise judge as having none', () => {
    const old = JSON.parse(JSON.stringify(report({ judge: { redisUrl: 'redis://x' } }, false, true))) as { judge: Record<string, unknown> };
    delete old.judge.pairStream;
    const parsed = coverageReportSchema.parse(old);
    expect(parsed.judge.pairStream).toBeNull();
    expect(inventoryFromReport(parsed).pairwiseJudge).toBe(false);
  });
});
