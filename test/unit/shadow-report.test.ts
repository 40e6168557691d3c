// The shadow report from pair records, without Redis: which pairs count where, the verdict's
// words and numbers, the worst pairs, and the text and HTML renderings.
import { describe, expect, it } from 'vitest';
import { answerFeatures } from '../../extproc/shadow/answer-features.js';
import { toRecord, type ShadowPairRecord } from '../../extproc/shadow/pair-log.js';
import type { PairKind } from '../../extproc/shadow/pair-store.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { buildShadowReport } from '../../cli/shadow-report/report.js';
import { lengthWords } from '../../cli/shadow-report/verdict.js';
import { renderText } from '../../cli/shadow-report/text.js';
import { renderHtml } from '../../cli/shadow-report/html.js';
import { ecdfPlot } from '../../cli/shadow-report/svg.js';
import type { PreferenceRecord } from '../../extproc/shadow/preference-log.js';

const answer = (text: string, latencyMs: number, extra: { status?: number; goldenCorrect?: boolean } = {}) =>
  answerFeatures({ observation: { ...emptyObservation(), text, textLength: text.length, finishReason: 'stop' }, status: extra.status ?? 200, latencyMs, ...(extra.goldenCorrect === undefined ? {} : { goldenCorrect: extra.goldenCorrect }) });

const labels = { service: 'chat', version: 'v2', rolloutHash: 'h1' };
let clock = 0;
const pair = (kind: PairKind, id: string, stable: ReturnType<typeof answer>, other: ReturnType<typeof answer>): ShadowPairRecord => toRecord({ kind, requestId: id, stable, other }, labels, ++clock);
const text = (i: number) => `answer number ${i} says the capital of France is Paris`;

/** n noise pairs (the stable repeating itself, latency ±5 ms) and n candidate pairs made by `candidate`. */
function rollout(n: number, candidate: (i: number) => ReturnType<typeof answer>): ShadowPairRecord[] {
  const records: ShadowPairRecord[] = [];
  for (let i = 0; i < n; i++) {
    const stable = answer(text(i), 100 + (i % 10));
    records.push(pair('noise', `r${i}`, stable, answer(text(i), 100 + ((i * 7) % 10))));
    records.push(pair('candidate', `r${i}`, stable, candidate(i)));
  }
  return records;
}

describe('buildShadowReport', () => {
  it('a slower candidate: the latency delta stands out, with its numbers, and the verdict says so', () => {
    const report = buildShadowReport(rollout(40, (i) => answer(text(i), 300 + (i % 10))), { service: 'chat', rolloutHash: 'h1', otherRollouts: ['h0'] });
    const latency = report.features.find((f) => f.key === 'latencyDeltaMs')!;
    expect(latency.candidate!.p50).toBeCloseTo(200, 0);
    expect(latency.test!.p).toBeLessThan(0.001);
    expect(report.verdict.status).toBe('differs');
    expect(report.verdict.lines).toEqual([expect.stringMatching(/^the candidate answers 200 ms slower than the stable \(median delta \+200 ms vs noise [+-]?\d ms, p<0\.001\)$/)]);
    expect(report).toMatchObject({ n: { candidate: 40, noise: 40 }, versions: ['v2'], otherRollouts: ['h0'], from: expect.any(Number) });
    // TTFT and tokens were not measured: no quantiles, no test, no sentence.
    expect(report.features.find((f) => f.key === 'ttftDeltaMs')).toMatchObject({ candidate: undefined, noise: undefined, test: undefined });
  });

  it('failed answers count only as "failed gained"; golden flips are rated over golden questions only', () => {
    const records = rollout(30, (i) => (i < 6 ? answer('', 5, { status: 503 }) : answer(text(i), 100, i < 16 ? { goldenCorrect: i % 2 === 0 } : {})));
    // The golden questions: the stable was right on all of them (its noise pair too).
    for (const r of records) if (Number(r.requestId.slice(1)) < 16) (r.stable.goldenCorrect = true), r.kind === 'noise' && (r.other.goldenCorrect = true);
    for (const r of records) if (r.kind === 'candidate' && r.other.goldenCorrect === false) r.comparison.goldenCorrect = 'lost';
    const report = buildShadowReport(records, { service: 'chat', rolloutHash: 'h1' });
    expect(report.features.find((f) => f.key === 'lengthRatio')!.candidate!.n).toBe(24);
    const failed = report.flips.find((f) => f.key === 'failedGained')!;
    expect(failed.candidate).toMatchObject({ count: 6, n: 30, rate: 0.2 });
    expect(failed.candidate!.ci95[0]).toBeCloseTo(0.0951, 3); // Wilson 6/30: [0.0951, 0.3731]
    expect(failed.noise).toMatchObject({ count: 0, n: 30 });
    // Pairs 6..15 are golden on both sides; the odd ones lost.
    expect(report.flips.find((f) => f.key === 'goldenLost')!.candidate).toMatchObject({ count: 5, n: 10 });
    expect(report.verdict.lines[0]).toMatch(/^the candidate fails where the stable answers \(6 of 30: 20%, 95% CI 10%–37%; noise 0%, 95% CI 0%–11%\)$/);
    expect(report.worst.filter((w) => w.reason === 'failed').map((w) => w.requestId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(report.worst.filter((w) => w.reason === 'golden lost').map((w) => w.requestId)).toEqual(['r7', 'r9', 'r11', 'r13', 'r15']);
  });

  it('an identical candidate: nothing stands out; thin or one-sided data says so', () => {
    const same = buildShadowReport(rollout(40, (i) => answer(text(i), 100 + ((i * 3) % 10))), { service: 'chat', rolloutHash: 'h1' });
    expect(same.verdict).toEqual({ status: 'same', lines: [expect.stringMatching(/^no difference from the stable beyond its own noise floor \(40 candidate pairs, 40 noise pairs/)] });
    const thin = buildShadowReport(rollout(5, (i) => answer(text(i), 100)), { service: 'chat', rolloutHash: 'h1' });
    expect(thin.verdict.lines.at(-1)).toBe('only 5 candidate pairs: too few to be sure (want ≥ 20)');
    const noNoise = buildShadowReport(rollout(30, (i) => answer(text(i), 100)).filter((r) => r.kind === 'candidate'), { service: 'chat', rolloutHash: 'h1' });
    expect(noNoise.verdict.status).toBe('unknown');
    expect(noNoise.verdict.lines.join(' ')).toMatch(/no noise-floor pairs/);
    const noCandidate = buildShadowReport(rollout(30, (i) => answer(text(i), 100)).filter((r) => r.kind === 'noise'), { service: 'chat', rolloutHash: 'h1' });
    expect(noCandidate.verdict.lines[0]).toMatch(/no candidate pairs .* is the shadow step mirroring traffic/);
    expect(() => buildShadowReport([], { service: 'chat', rolloutHash: 'h1' })).toThrow(/no shadow pairs for chat rollout h1/);
  });

  it('says ratios in words', () => {
    expect([2.05, 1.5, 1.1, 0.5, 0.25, 0.8, 1].map(lengthWords)).toEqual(['twice as long as', '1.5 times as long as', '10% longer than', 'half as long as', '4.0 times shorter than', '20% shorter than', 'as long as']);
  });
});

describe('renderings', () => {
  const records = rollout(25, (i) => answer(`${text(i)} ${text(i)}`, 100));
  records[1]!.requestId = '<script>alert(1)</script>';
  const report = buildShadowReport(records, { service: 'chat', rolloutHash: 'h1' });

  it('text: verdict, one row per feature and kind, flips with intervals', () => {
    const out = renderText(report);
    expect(out).toContain("  - the candidate's answers are twice as long as the stable's");
    expect(out).toMatch(/^length ratio\s+candidate\s+25\s+2\.00×/m);
    expect(out).toMatch(/^\s+noise\s+25\s+1\.00×\s+1\.00×/m);
    expect(out).toMatch(/^failed gained\s+0\/25 0% \[0%–13%\]\s+0\/25 0% \[0%–13%\]$/m);
  });

  it('html: self-contained, one plot per measured feature with both series, client text escaped', () => {
    const page = renderHtml(report, records, 0);
    expect(page).not.toMatch(/<script>|<link|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // length ratio, latency delta, similarity have values; TTFT and tokens do not; plus the flip bars.
    expect(page.match(/<svg /g)).toHaveLength(4);
    expect(page.match(/stroke="#d9480f" stroke-width="3"/g)).toHaveLength(3);
    expect(page.match(/stroke="#1c7ed6" stroke-width="3"/g)).toHaveLength(3);
    expect(page).toContain('class="verdict differs"');
  });

  it('an ECDF of 5000 values draws at most two steps per pixel column, ending at 100%', () => {
    const values = Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 100);
    const svg = ecdfPlot({ xLabel: 'x', format: String, series: [{ name: 'a', colour: '#000001', values }], width: 440, height: 250 });
    const path = svg.match(/<path d="([^"]+)" fill="none" stroke="#000001"/)![1]!;
    const steps = path.match(/V/g)!.length;
    expect(steps).toBeGreaterThan(100);
    expect(steps).toBeLessThanOrEqual(440 * 2); // x is rounded to half a pixel
    expect(path).toMatch(/V14\.0 H\d/); // the last step reaches the top (y of 100%) before the final run
  });
});

describe('the pairwise judge in the report', () => {
  const records = rollout(30, (i) => answer(text(i), 100 + (i % 10)));
  /** count records of a kind, preferred as given, the first `inconsistent` of the ties flagged. */
  const prefs = (pair: PairKind, counts: { stable: number; candidate: number; tie: number; inconsistent?: number }): PreferenceRecord[] => {
    const out: PreferenceRecord[] = [];
    let ties = 0;
    for (const preferred of ['stable', 'candidate', 'tie'] as const) {
      for (let i = 0; i < counts[preferred]; i++) out.push({ at: out.length, requestId: `${pair}-${preferred}-${i}`, pair, preferred, inconsistent: preferred === 'tie' && ties++ < (counts.inconsistent ?? 0) });
    }
    return out;
  };

  it('is absent without preferences, and its table and intervals are there with them', () => {
    expect(buildShadowReport(records, { service: 'chat', rolloutHash: 'h1' }).preferences).toBeUndefined();
    expect(renderText(buildShadowReport(records, { service: 'chat', rolloutHash: 'h1' }))).not.toContain('LLM judge');
    const preferences = [...prefs('candidate', { stable: 6, candidate: 3, tie: 21, inconsistent: 12 }), ...prefs('noise', { stable: 2, candidate: 2, tie: 16, inconsistent: 9 })];
    const report = buildShadowReport(records, { service: 'chat', rolloutHash: 'h1', preferences });
    expect(report.preferences!.candidate).toMatchObject({ n: 30, stable: { count: 6, n: 30, rate: 0.2 }, candidate: { count: 3 }, tie: { count: 21 }, inconsistent: { count: 12 } });
    expect(report.preferences!.candidate!.stable.ci95[0]).toBeCloseTo(0.0951, 3); // Wilson 6/30: [0.0951, 0.3731]
    expect(report.preferences!.candidate!.stable.ci95[1]).toBeCloseTo(0.3731, 3);
    expect(report.preferences!.noise).toMatchObject({ n: 20, stable: { count: 2 }, inconsistent: { count: 9 } });
    expect(report.preferences!.stableWinsExcess!.estimate).toBeCloseTo(0.1, 9);
    // 20% vs 10% on 30 and 20 pairs: the interval spans 0, so the verdict does not speak of it.
    expect(report.preferences!.stableWinsExcess!.ci95[0]).toBeLessThan(0);
    expect(report.verdict.lines.join('\n')).not.toContain('judge');
    const out = renderText(report);
    expect(out).toMatch(/^stable preferred\s+6\/30 20% \[10%–37%\]\s+2\/20 10% \[3%–30%\]$/m);
    expect(out).toMatch(/^ {2}of which the orders disagreed\s+12\/30 40% /m);
    expect(out).toMatch(/^stable wins, candidate − noise: \+10 pts \[-\d+ pts – \+\d+ pts\]$/m);
    expect(renderHtml(report, records, 0)).toContain('LLM judge: which answer is better (both orders asked)');
  });

  it('a candidate the judge beats clearly more often than the stable beats itself is in the verdict', () => {
    const preferences = [...prefs('candidate', { stable: 40, candidate: 2, tie: 18 }), ...prefs('noise', { stable: 5, candidate: 6, tie: 49 })];
    const report = buildShadowReport(records, { service: 'chat', rolloutHash: 'h1', preferences });
    expect(report.preferences!.stableWinsExcess!.ci95[0]).toBeGreaterThan(0);
    expect(report.verdict.status).toBe('differs');
    expect(report.verdict.lines).toContainEqual(expect.stringMatching(/^the LLM judge prefers the stable's answer to the candidate's more often than to its own second answer \(40 of 60: 67%, 95% CI 54%–77%; noise 8%, 95% CI 4%–18%; both orders asked\)$/));
  });
});
