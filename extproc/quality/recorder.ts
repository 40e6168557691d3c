import type { Logger } from '../../common/logger.js';
import type { Price, QualityConfig } from './config.js';
import { evaluateSample, INLINE_EVALUATION_CHARS, type Evaluation, type NamedVerdict } from './evaluate-sample.js';
import { answered, goldenEvaluator } from './evaluators/golden.js';
import type { Evaluator, Sample, Verdict } from './evaluators/types.js';
import type { JudgeQueue } from './judge-queue.js';
import type { InferenceLabels, QualityMetrics } from './metrics.js';
import { readWhole } from './observation.js';
import { ProbeRates } from './probe-rates.js';
import { answerSignals } from './signals.js';

/** The evaluator name golden-probe verdicts are recorded under. */
export const GOLDEN_PROBE_EVALUATOR = 'golden-probe';


export interface FinishedSample extends Sample {
  /** Chance this request was sampled; each counted quantity is scaled by 1/probability. */
  probability: number;
  /** A verified golden probe (fledge's own traffic), not a user request. */
  probe?: boolean;
}

/** Cost of one response from its usage; undefined when the version has no price. */
export function costOf(price: Price | undefined, usage: { input: number; output: number; cached: number }): number | undefined {
  if (!price) return undefined;
  const cached = Math.min(usage.cached, usage.input);
  const uncached = usage.input - cached;
  return (uncached * price.inputPerMillion + cached * (price.cachedInputPerMillion ?? price.inputPerMillion) + usage.output * price.outputPerMillion) / 1e6;
}

export function priceFor(prices: QualityConfig['prices'], service: string, version: string): Price | undefined {
  return prices[`${service}/${version}`] ?? prices[version];
}

/** Several verdicts into one: hallucinated if any evaluator says so; scores per evaluator. */
export function mergeVerdicts(verdicts: readonly NamedVerdict[]): { hallucination: boolean; refusal: boolean; scores: { evaluator: string; score: number }[] } {
  const scores: { evaluator: string; score: number }[] = [];
  let hallucination = false;
  let refusal = false;
  for (const { name, verdict } of verdicts) {
    if (verdict.score !== undefined && Number.isFinite(verdict.score)) scores.push({ evaluator: name, score: Math.min(1, Math.max(0, verdict.score)) });
    if (verdict.hallucination === true) hallucination = true;
    if (verdict.refusal === true) refusal = true;
  }
  return { hallucination, refusal, scores };
}

/** One hallucination verdict on an answer's text (golden set, golden probe), for the guardrail. */
export type VerdictListener = (labels: InferenceLabels, hallucinated: boolean) => void;

/** Runs the named built-in evaluators somewhere other than the event loop; undefined when it could not. */
export type OffThreadEvaluation = (sample: Sample, evaluators: string[]) => Promise<Evaluation | undefined>;

/** Turns a finished sample into metrics and judge work. Runs after the response, never on it. */
export class SampleRecorder {
  constructor(
    private readonly config: QualityConfig,
    private readonly metrics: QualityMetrics,
    private readonly evaluators: readonly Evaluator[],
    private readonly judge: JudgeQueue | undefined,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
    readonly probeRates: ProbeRates = new ProbeRates(config.probeRateWindowSeconds * 1000),
    private readonly onVerdict: VerdictListener = () => undefined,
    /** Long answers (over INLINE_EVALUATION_CHARS) are evaluated here; inline when absent. */
    private readonly offThread?: OffThreadEvaluation,
  ) {}

  record(sample: FinishedSample): void {
    const labels = { service: sample.service, version: sample.version, rollout_hash: sample.rolloutHash };
    const weight = sample.probability > 0 ? 1 / sample.probability : 1;
    const o = sample.observation;
    this.metrics.samples.inc({ ...labels, outcome: outcomeOf(sample) });
    if (sample.probe) return this.recordProbe(sample, labels);

    if (o.usage) {
      this.metrics.tokens.inc({ ...labels, type: 'input' }, o.usage.input * weight);
      this.metrics.tokens.inc({ ...labels, type: 'output' }, o.usage.output * weight);
      this.metrics.tokens.inc({ ...labels, type: 'cached' }, o.usage.cached * weight);
      if (o.usage.cached > 0) this.metrics.cacheHits.inc(labels, weight);
      const cost = costOf(priceFor(this.config.prices, sample.service, sample.version), o.usage);
      if (cost === undefined) this.metrics.unpriced.inc({ version: sample.version });
      else this.metrics.cost.inc(labels, cost * weight);
    }
    if (o.ttftSeconds !== undefined) this.metrics.ttft.observe(labels, o.ttftSeconds);
    if (o.confidence !== undefined) this.metrics.confidence.observe(labels, o.confidence);

    if (answered(sample)) this.metrics.answerChars.observe(labels, o.textLength);

    const evaluators = this.evaluators.filter((e) => e.name !== 'model-reported' || this.trustsModelReports(sample.service));
    this.evaluated(sample, evaluators, (evaluation) => {
      this.recordVerdicts(sample, labels, weight, evaluation.verdicts);
      this.offerToJudge(sample);
    });
  }

  /**
   * Runs the evaluators and hands their verdicts to `then`: at once for a short answer, after
   * the quality worker thread's answer for a long one. Evaluators that failed (or a worker that
   * could not run them) are counted and logged; the sample goes on without their verdicts.
   */
  private evaluated(sample: FinishedSample, evaluators: readonly Evaluator[], then: (evaluation: Evaluation) => void): void {
    const done = (evaluation: Evaluation): void => {
      for (const { evaluator, message } of evaluation.failed) {
        this.metrics.evaluatorErrors.inc({ evaluator });
        this.logger.warn({ evaluator, error: message, service: sample.service }, 'evaluator failed');
      }
      then(evaluation);
    };
    if (!this.offThread || sample.observation.text.length <= INLINE_EVALUATION_CHARS) return done(evaluateSample(sample, evaluators));
    const names = evaluators.map((e) => e.name);
    this.offThread(sample, names)
      .then((evaluation) => done(evaluation ?? { verdicts: [], failed: names.map((evaluator) => ({ evaluator, message: 'the quality worker could not evaluate the answer' })) }))
      .catch((err: unknown) => this.logger.warn({ err, service: sample.service, version: sample.version }, 'recording a sample failed'));
  }

  private recordVerdicts(sample: FinishedSample, labels: InferenceLabels, weight: number, verdicts: readonly NamedVerdict[]): void {
    const format = verdicts.find((v) => v.name === 'format')?.verdict.score;
    for (const signal of answerSignals(sample, format === undefined ? undefined : format === 1)) this.metrics.signals.inc({ ...labels, signal });
    for (const { name, verdict } of verdicts) this.countVerdict(labels, name, verdict);
    const merged = mergeVerdicts(verdicts);
    if (verdicts.some((v) => v.verdict.hallucination !== undefined)) this.onVerdict(labels, merged.hallucination);
    for (const { evaluator, score } of merged.scores) this.addScore(labels, evaluator, score);
    // A version under golden probes has its hallucination estimate from the probes (one estimator per series).
    if (merged.hallucination && !this.probeRates.probed(labels)) this.metrics.hallucinations.inc(labels, weight);
    if (merged.refusal) this.metrics.refusals.inc(labels);
  }

  /**
   * A golden probe: scored by the golden set (every probe, no sampling), never counted as
   * user traffic (no tokens, cost, TTFT). Its hallucination verdict enters the version's
   * probe rate, which user requests carry into inference_hallucination_total.
   */
  private recordProbe(sample: FinishedSample, labels: InferenceLabels): void {
    if (!answered(sample)) return; // an error or a cut answer is no verdict (counted in fledge_probe_requests_total)
    if (!sample.golden) {
      this.metrics.probeUnmatched.inc(labels);
      return;
    }
    // The golden evaluator's verdict, recorded as the probe's own.
    this.evaluated(sample, [goldenEvaluator], ({ verdicts }) => {
      const verdict = verdicts.find((v) => v.name === goldenEvaluator.name)?.verdict;
      if (verdict?.score === undefined) return;
      this.countVerdict(labels, GOLDEN_PROBE_EVALUATOR, verdict);
      this.addScore(labels, GOLDEN_PROBE_EVALUATOR, verdict.score);
      this.probeRates.recordVerdict(labels, verdict.hallucination === true);
      this.onVerdict(labels, verdict.hallucination === true);
    });
  }

  private countVerdict(labels: InferenceLabels, evaluator: string, verdict: Verdict): void {
    if (verdict.score === undefined && verdict.hallucination === undefined) return;
    this.metrics.evaluated.inc({ ...labels, evaluator });
    if (verdict.hallucination === true) this.metrics.hallucinationVerdicts.inc({ ...labels, evaluator });
  }

  private addScore(labels: InferenceLabels, evaluator: string, score: number): void {
    this.metrics.score.add({ ...labels, evaluator }, score);
    this.metrics.scoreSum.inc({ ...labels, evaluator }, score);
    this.metrics.scoreCount.inc({ ...labels, evaluator });
  }

  private trustsModelReports(service: string): boolean {
    const opted = this.config.modelReported.services;
    return opted.includes('*') || opted.includes(service);
  }

  private offerToJudge(sample: FinishedSample): void {
    if (!this.judge) return;
    const o = sample.observation;
    const prompt = sample.request?.prompt;
    if (prompt === undefined || o.text === '' || !readWhole(o)) return this.metrics.judgeQueue.inc({ result: 'skipped' });
    // A golden answer already has a verdict from its reference; judging it too would count
    // one wrong answer twice in inference_hallucination_total.
    if (sample.golden) return this.metrics.judgeQueue.inc({ result: 'skipped' });
    if (this.random() >= this.config.judge.rate) return this.metrics.judgeQueue.inc({ result: 'skipped' });
    const sampled = sample.probability > 0 ? sample.probability : 1;
    const max = this.config.judge.maxTextChars;
    this.judge.offer({
      service: sample.service,
      version: sample.version,
      rollout_hash: sample.rolloutHash,
      prompt: prompt.slice(0, max),
      answer: o.text.slice(0, max),
      enqueued_at: String(Date.now()),
      weight: String(1 / (sampled * this.config.judge.rate)),
    });
  }
}

function outcomeOf(sample: FinishedSample): string {
  const o = sample.observation;
  if (o.oversized) return 'oversized';
  if (o.unread) return 'unread';
  if (o.malformed) return 'malformed';
  if (o.truncated) return 'truncated';
  if (!o.usage) return 'no-usage';
  return 'parsed';
}
