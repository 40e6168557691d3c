/** Number formats shared by the text and HTML reports. */
import type { FeatureSummary } from './report.js';

/** A feature's value with its unit, short enough for a table cell. */
export function featureValue(feature: Pick<FeatureSummary, 'key' | 'unit'>, v: number): string {
  if (feature.key === 'lengthRatio') return `${v.toFixed(2)}×`;
  if (feature.key === 'similarity') return v.toFixed(2);
  const rounded = Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
  return `${rounded > 0 ? '+' : ''}${rounded}${feature.unit === 'ms' ? ' ms' : ''}`;
}

export function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
