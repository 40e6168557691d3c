/**
 * fledge's `compare` block on a metric: judge the canary against the stable running at the
 * same time, with a tolerated margin and a confidence, from the two arms' counts.
 *
 *   compare:
 *     baseline: stable        # the only baseline today
 *     margin: 0.02            # tolerated excess: 2 points for a rate
 *     confidence: 0.95        # each verdict wrong with probability ≤ 5%, at any look
 *     worse: higher           # or lower (pass rates, quality)
 *     minSamples: 50          # per arm, before any verdict
 *     events: …, trials: …    # PromQL counts of a rate, or
 *     buckets: …              # PromQL cumulative buckets (by le) of a histogram
 *
 * Without explicit count queries they are derived from the metric's own query when it
 * has one of the two shapes the seed uses (see deriveCountQueries). `{{args.*}}` in them
 * are rendered per arm like the metric's query (Latest-hash args → the stable hash for the
 * stable arm).
 */
import { z } from 'zod';

export const DEFAULT_COMPARE_CONFIDENCE = 0.95;
export const DEFAULT_COMPARE_MIN_SAMPLES = 50;

const query = z.string().trim().min(1, 'query must not be empty');

export const compareSchema = z
  .strictObject({
    baseline: z.literal('stable', { error: 'baseline must be "stable" (the stable version running at the same time)' }).default('stable'),
    margin: z.number({ error: 'margin (the tolerated excess of the canary over the stable) is required and must be a number' }).positive('margin must be positive'),
    confidence: z.number().gt(0.5, 'confidence must be above 0.5').lt(1, 'confidence must be below 1').default(DEFAULT_COMPARE_CONFIDENCE),
    worse: z.enum(['higher', 'lower']).default('higher'),
    minSamples: z.number().int().min(1, 'minSamples must be at least 1').default(DEFAULT_COMPARE_MIN_SAMPLES),
    events: query.optional(),
    trials: query.optional(),
    buckets: query.optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.events === undefined) !== (c.trials === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.events === undefined ? 'events' : 'trials'], message: 'events and trials go together (the counts of a rate)' });
    }
    if (c.buckets !== undefined && (c.events !== undefined || c.trials !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['buckets'], message: 'give either events and trials (a rate) or buckets (a histogram), not both' });
    }
  });
export type Compare = z.output<typeof compareSchema>;

export type CountQueries = { kind: 'proportions'; events: string; trials: string } | { kind: 'distribution'; buckets: string };

/**
 * Counters that extproc increments by 1/p per sampled answer (Horvitz–Thompson estimates
 * of totals, docs/metrics.md): their increase is not a number of observations, and a test
 * fed with them would be ~1/p times overconfident. Derivation refuses them.
 */
export const ESTIMATED_COUNTERS = ['inference_hallucination_total', 'inference_tokens_total', 'inference_cost_total', 'inference_cache_hits_total'];

/**
 * The count queries a compare block uses: explicit ones, else derived from the metric's
 * query. Returns an error string when neither works.
 *
 * Derivation rule (whitespace and outer parentheses ignored):
 * - `sum(rate(E[w])) [or vector(0)] / sum(rate(T[w]))` → events `sum(increase(E[w]))`,
 *   trials `sum(increase(T[w]))`: a rate's numerator and denominator, as counts in the
 *   same window. E must not be an estimated counter (ESTIMATED_COUNTERS).
 * - `histogram_quantile(q, [sum by (le) (]rate(X_bucket[w])[)])` → buckets
 *   `sum by (le) (increase(X_bucket[w]))`.
 */
export function countQueries(compare: Compare, metricQuery: string, window?: string): CountQueries | { error: string } {
  if (compare.buckets !== undefined) return { kind: 'distribution', buckets: window === undefined ? compare.buckets : overWindow(compare.buckets, window) };
  if (compare.events !== undefined && compare.trials !== undefined) {
    if (window === undefined) return { kind: 'proportions', events: compare.events, trials: compare.trials };
    return { kind: 'proportions', events: overWindow(compare.events, window), trials: overWindow(compare.trials, window) };
  }
  return deriveCountQueries(metricQuery, window);
}

/**
 * An explicit count query over `window` instead of its own range, when it is a plain count:
 * `sum(increase(S[w]))` or `sum by (le) (increase(S[w]))`, optionally `or vector(0)`. Its
 * increase over the stage's age is then exactly the stage's count, as for derived queries.
 * Any other shape (offsets, subqueries, several ranges, arithmetic) may mean something the
 * range alone does not say, so it runs as written.
 */
export function overWindow(query: string, window: string): string {
  let text = stripParens(query.replace(/\s+/g, ' ').trim());
  let orZero = '';
  const parts = splitTopLevel(text, ' or ');
  if (parts.length === 2 && /^vector\s*\(\s*0\s*\)$/.test(parts[1]!.trim())) {
    text = stripParens(parts[0]!.trim());
    orZero = ' or vector(0)';
  }
  const sum = /^sum\s*(\s+by\s*\(\s*le\s*\)\s*)?\(/.exec(text);
  if (!sum || closingOf(text, sum[0].length - 1) !== text.length - 1) return query;
  const range = rangeOf(stripParens(text.slice(sum[0].length - 1).trim()), 'increase');
  if (!range || range.selector.includes('[') || /\boffset\b|@/.test(range.selector)) return query;
  const by = sum[1] === undefined ? '' : ' by (le) ';
  return `sum${by}(increase(${range.selector}[${window}]))${orZero}`;
}

/** `window` (a PromQL duration) replaces the query's own range: the engine counts a stage's samples since the stage began. */
export function deriveCountQueries(metricQuery: string, window?: string): CountQueries | { error: string } {
  const text = stripParens(metricQuery.replace(/\s+/g, ' ').trim());
  const histogram = /^histogram_quantile\s*\(/.exec(text);
  if (histogram) {
    const args = splitTopLevel(text.slice(histogram[0].length, -1), ',');
    const inner = args.length === 2 ? unwrapSumByLe(stripParens(args[1]!.trim())) : undefined;
    const range = inner === undefined ? undefined : rangeOf(inner, 'rate');
    if (!range || !/_bucket\s*(\{|$)/.test(range.selector)) return { error: 'cannot derive histogram buckets from this histogram_quantile query; give compare.buckets' };
    return { kind: 'distribution', buckets: `sum by (le) (increase(${range.selector}[${window ?? range.window}]))` };
  }
  const sides = splitTopLevel(text, '/');
  if (sides.length !== 2) return { error: 'cannot derive counts: the query is not a ratio of two sums or a histogram_quantile; give compare.events and compare.trials, or compare.buckets' };
  const events = sumOfRate(sides[0]!, true);
  const trials = sumOfRate(sides[1]!, false);
  if (!events || !trials) return { error: 'cannot derive counts: each side of the ratio must be sum(rate(<counter>[<window>])); give compare.events and compare.trials' };
  const counter = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(events.selector)?.[0];
  if (counter !== undefined && ESTIMATED_COUNTERS.includes(counter)) {
    return { error: `cannot derive counts from ${counter}: it is an estimated counter (1/p per sampled answer), not a count of answers; give compare.events and compare.trials as counts of evaluated answers` };
  }
  return { kind: 'proportions', events: `sum(increase(${events.selector}[${window ?? events.window}]))`, trials: `sum(increase(${trials.selector}[${window ?? trials.window}]))` };
}

function sumOfRate(side: string, allowOrVectorZero: boolean): { selector: string; window: string } | undefined {
  let text = stripParens(side.trim());
  if (allowOrVectorZero) {
    const parts = splitTopLevel(text, ' or ');
    if (parts.length === 2 && /^vector\s*\(\s*0\s*\)$/.test(parts[1]!.trim())) text = stripParens(parts[0]!.trim());
  }
  const sum = /^sum\s*\(/.exec(text);
  if (!sum || !text.endsWith(')')) return undefined;
  return rangeOf(stripParens(text.slice(sum[0].length - 1).trim()), 'rate');
}

function unwrapSumByLe(text: string): string {
  const m = /^sum\s+by\s*\(\s*le\s*\)\s*\(/.exec(text);
  return m ? stripParens(text.slice(m[0].length - 1).trim()) : text;
}

/** `fn(selector[window])` → its parts. */
function rangeOf(text: string, fn: string): { selector: string; window: string } | undefined {
  const m = new RegExp(`^${fn}\\s*\\(([\\s\\S]+)\\[([0-9a-zA-Z{}._-]+)\\]\\s*\\)$`).exec(text);
  if (!m) return undefined;
  return { selector: m[1]!.trim(), window: m[2]! };
}

/** Removes parentheses that enclose the whole text. */
function stripParens(text: string): string {
  while (text.startsWith('(') && text.endsWith(')') && closingOf(text, 0) === text.length - 1) text = text.slice(1, -1).trim();
  return text;
}

function closingOf(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** Splits at `separator` outside (), [] and {} and outside quotes. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    else if (depth === 0 && text.startsWith(separator, i)) {
      parts.push(text.slice(start, i));
      start = i + separator.length;
      i += separator.length - 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
