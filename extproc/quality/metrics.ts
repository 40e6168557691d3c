import { Counter, Histogram, type Registry } from 'prom-client';
import { ScoreWindow } from './score-window.js';

const LABELS = ['service', 'version', 'rollout_hash'] as const;
export type InferenceLabels = Record<(typeof LABELS)[number], string>;

/** Seconds; streaming TTFT targets sit between 50 ms and a few seconds. */
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10];

/**
 * The quality metrics extproc derives from sampled responses. Counters marked
 * "estimated" add 1/p per sampled response (p: the chance it was sampled), so with the
 * requests counter, which counts every request, they give per-request rates.
 */
export class QualityMetrics {
  readonly score: ScoreWindow<(typeof LABELS)[number] | 'evaluator'>;
  private readonly touched = new Set<string>();

  readonly hallucinations: Counter<(typeof LABELS)[number]>;
  readonly tokens: Counter<(typeof LABELS)[number] | 'type'>;
  readonly cost: Counter<(typeof LABELS)[number]>;
  readonly cacheHits: Counter<(typeof LABELS)[number]>;
  readonly ttft: Histogram<(typeof LABELS)[number]>;
  readonly confidence: Histogram<(typeof LABELS)[number]>;
  readonly sampled: Counter<(typeof LABELS)[number] | 'reason'>;
  readonly samples: Counter<(typeof LABELS)[number] | 'outcome'>;
  readonly scoreSum: Counter<(typeof LABELS)[number] | 'evaluator'>;
  readonly scoreCount: Counter<(typeof LABELS)[number] | 'evaluator'>;
  readonly refusals: Counter<(typeof LABELS)[number]>;
  readonly unpriced: Counter<'version'>;
  readonly judgeQueue: Counter<'result'>;
  readonly evaluatorErrors: Counter<'evaluator'>;
  readonly requestBodies: Counter<'reader' | 'result'>;
  readonly workerJobs: Counter<'job' | 'result'>;
  readonly evaluated: Counter<(typeof LABELS)[number] | 'evaluator'>;
  readonly hallucinationVerdicts: Counter<(typeof LABELS)[number] | 'evaluator'>;
  readonly signals: Counter<(typeof LABELS)[number] | 'signal'>;
  readonly answerChars: Histogram<(typeof LABELS)[number]>;
  readonly probeUnmatched: Counter<(typeof LABELS)[number]>;

  constructor(registry: Registry, windowSeconds: number) {
    const registers = [registry];
    this.score = new ScoreWindow(
      registry,
      'inference_quality_score',
      `Mean quality score in [0,1] over the last ${windowSeconds}s, per evaluator (golden, format, model-reported, judge); avg() over series weighs each evaluator (and replica) equally.`,
      [...LABELS, 'evaluator'],
      windowSeconds,
    );
    this.hallucinations = new Counter({ name: 'inference_hallucination_total', help: 'Estimated hallucinated responses (golden answer wrong, or reported by the model); 1/p per sampled verdict.', labelNames: LABELS, registers });
    this.tokens = new Counter({ name: 'inference_tokens_total', help: 'Estimated tokens from response usage, type=input (all prompt tokens), output, cached (the cached part of input); 1/p per sampled response.', labelNames: [...LABELS, 'type'], registers });
    this.cost = new Counter({ name: 'inference_cost_total', help: 'Estimated cost (price table units, per million tokens) of responses; 1/p per sampled response.', labelNames: LABELS, registers });
    this.cacheHits = new Counter({ name: 'inference_cache_hits_total', help: 'Estimated responses whose prompt was (partly) served from the prompt cache (cached tokens > 0); 1/p per sampled response.', labelNames: LABELS, registers });
    this.ttft = new Histogram({ name: 'inference_time_to_first_token_seconds', help: 'Seconds from request headers to the first content token of sampled streamed responses.', labelNames: LABELS, buckets: TTFT_BUCKETS, registers });
    this.confidence = new Histogram({ name: 'fledge_quality_confidence', help: 'Confidence of sampled answers that carried logprobs: exp(mean token logprob), in (0,1].', labelNames: LABELS, buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1], registers });
    this.sampled = new Counter({ name: 'fledge_quality_sampled_total', help: 'Responses selected for sampling, by reason (rate, rule, golden).', labelNames: [...LABELS, 'reason'], registers });
    this.samples = new Counter({ name: 'fledge_quality_samples_total', help: 'Sampled responses by outcome (parsed, malformed, oversized, truncated, no-usage, unread: a large JSON body the quality worker could not read).', labelNames: [...LABELS, 'outcome'], registers });
    this.scoreSum = new Counter({ name: 'fledge_quality_score_sum_total', help: 'Sum of quality scores per evaluator (with fledge_quality_scores_total: a weighted mean over any range).', labelNames: [...LABELS, 'evaluator'], registers });
    this.scoreCount = new Counter({ name: 'fledge_quality_scores_total', help: 'Quality scores recorded per evaluator.', labelNames: [...LABELS, 'evaluator'], registers });
    this.refusals = new Counter({ name: 'fledge_quality_refusals_total', help: 'Sampled responses that were refusals.', labelNames: LABELS, registers });
    this.unpriced = new Counter({ name: 'fledge_quality_unpriced_total', help: 'Sampled responses whose version has no entry in the price table.', labelNames: ['version'], registers });
    this.judgeQueue = new Counter({ name: 'fledge_quality_judge_enqueue_total', help: 'Samples offered to the LLM judge stream, by result (queued, failed, skipped).', labelNames: ['result'], registers });
    this.evaluated = new Counter({ name: 'fledge_quality_evaluated_total', help: 'Answers an evaluator gave a verdict on (a score or a hallucination opinion): the n behind quality and hallucination measurements. evaluator=golden-probe for golden probes.', labelNames: [...LABELS, 'evaluator'], registers });
    this.hallucinationVerdicts = new Counter({ name: 'fledge_quality_hallucination_verdicts_total', help: 'Answers an evaluator judged hallucinated, unweighted (with fledge_quality_evaluated_total: the raw hallucination rate per evaluator).', labelNames: [...LABELS, 'evaluator'], registers });
    this.signals = new Counter({ name: 'fledge_quality_signals_total', help: 'Reference-free signals of sampled user answers: empty, cut-off (finish_reason length), truncated (stream cut), refusal, json-valid, json-invalid (when JSON was asked).', labelNames: [...LABELS, 'signal'], registers });
    this.answerChars = new Histogram({ name: 'fledge_quality_answer_chars', help: 'Length in characters of sampled, complete user answers.', labelNames: LABELS, buckets: [0, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384], registers });
    this.probeUnmatched = new Counter({ name: 'fledge_probe_unmatched_total', help: 'Verified probes whose prompt matched no golden entry (no verdict; check the prober and extproc use the same golden file).', labelNames: LABELS, registers });
    this.evaluatorErrors = new Counter({ name: 'fledge_quality_evaluator_errors_total', help: 'Evaluators that threw on a sample (the sample is still counted).', labelNames: ['evaluator'], registers });
    this.requestBodies = new Counter({ name: 'fledge_quality_request_bodies_total', help: 'Sampled request bodies read, by reader (inline: up to 64 KiB, on the event loop; worker: larger, on a worker thread) and result (read, error, timeout).', labelNames: ['reader', 'result'], registers });
    this.workerJobs = new Counter({ name: 'fledge_quality_worker_jobs_total', help: 'Large JSON responses (job response-json, over 64 KiB) and long answers (job evaluate, over 64 Ki characters) handed to the quality worker thread, by result (done, error, timeout).', labelNames: ['job', 'result'], registers });
  }

  /** Creates the estimated counters at 0, so rates over them start with the request counter's. */
  touch(labels: InferenceLabels): void {
    const key = `${labels.service}\u0000${labels.version}\u0000${labels.rollout_hash}`;
    if (this.touched.has(key)) return;
    this.touched.add(key);
    this.hallucinations.inc(labels, 0);
    for (const type of ['input', 'output', 'cached']) this.tokens.inc({ ...labels, type }, 0);
    this.cost.inc(labels, 0);
    this.cacheHits.inc(labels, 0);
  }
}
