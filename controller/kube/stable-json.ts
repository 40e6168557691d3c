/**
 * JSON with object keys sorted: the same object reads the same whether it came from a typed
 * client call or from a watch (whose key order differs), so it can be compared as text.
 */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v)) ?? 'undefined';
}
