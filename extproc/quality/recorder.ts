import type { Logger } from '../../common/logger.js';
import type { Price, QualityConfig } from './config.js';
import type { Evaluator, Sample, Verdict } from './evaluators/types.js';
import type { JudgeQueue } from './judge-queue.js';
import type { QualityMetrics } from './metrics.js';

export interface FinishedSample extends Sample {
  /** Chance this request was sampled; each counted quantity is scaled by 1/probability. */
  probability: number;
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
export function mergeVerdicts(verdicts: { name: string; verdict: Verdict }[]): { hallucination: boolean; refusal: boolean; scores: { evaluator: string; score: number }[] } {
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

/** Turns a finished sample into metrics and judge work. Runs after the response, never on it. */
export class SampleRecorder {
  constructor(
    private readonly config: QualityConfig,
    private readonly metrics: QualityMetrics,
    private readonly evaluators: readonly Evaluator[],
    private readonly judge: JudgeQueue | undefined,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  record(sample: FinishedSample): void {
    const labels = { service: sample.service, version: sample.version, rollout_hash: sample.rolloutHash };
    const weight = sample.probability > 0 ? 1 / sample.probability : 1;
    const o = sample.observation;
    this.metrics.samples.inc({ ...labels, outcome: outcomeOf(sample) });

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

    const verdicts: { name: string; verdict: Verdict }[] = [];
    for (const evaluator of this.evaluators) {
      try {
        const verdict = evaluator.evaluate(sample);
        if (verdict) verdicts.push({ name: evaluator.name, verdict });
      } catch (err) {
        this.metrics.evaluatorErrors.inc({ evaluator: evaluator.name });
        this.logger.warn({ err, evaluator: evaluator.name, service: sample.service }, 'evaluator failed');
      }
    }
    const merged = mergeVerdicts(verdicts);
    for (const { evaluator, score } of merged.scores) {
      this.metrics.score.add({ ...labels, evaluator }, score);
      this.metrics.scoreSum.inc({ ...labels, evaluator }, score);
      this.metrics.scoreCount.inc({ ...labels, evaluator });
    }
    if (merged.hallucination) this.metrics.hallucinations.inc(labels, weight);
    if (merged.refusal) this.metrics.refusals.inc(labels);
    this.offerToJudge(sample);
  }

  private offerToJudge(sample: FinishedSample): void {
    if (!this.judge) return;
    const o = sample.observation;
    const prompt = sample.request?.prompt;
    if (prompt === undefined || o.text === '' || o.truncated || o.oversized || o.malformed) return this.metrics.judgeQueue.inc({ result: 'skipped' });
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
  if (o.malformed) return 'malformed';
  if (o.truncated) return 'truncated';
  if (!o.usage) return 'no-usage';
  return 'parsed';
}
