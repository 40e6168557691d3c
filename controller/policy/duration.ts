/**
 * Argo durations: a plain number of seconds (`pause: {duration: 30}` or `"30"`) or a Go
 * duration string (`10m`, `1h30m`, `1.5h`, `500ms`). Go has no day unit, and neither do we.
 */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds, or an error message saying what is wrong with the text. */
export function parseDuration(value: string | number): { ms: number } | { error: string } {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? { ms: value * 1000 } : { error: `duration must be a non-negative number of seconds, got ${value}` };
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return { ms: Number(text) * 1000 };
  let ms = 0;
  PART.lastIndex = 0;
  let matched = 0;
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== at) return { error: `"${value}" is not a duration (examples: 30s, 10m, 1h30m, or a number of seconds)` };
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched++;
  }
  if (matched === 0) return { error: `"${value}" is not a duration (examples: 30s, 10m, 1h30m, or a number of seconds)` };
  return { ms: Math.round(ms) };
}
