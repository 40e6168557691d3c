/**
 * A small JSON Schema subset, enough for golden answers and response_format checks:
 * type, enum, const, required, properties, additionalProperties (false), items,
 * minimum/maximum, minLength/maxLength, pattern. Unknown keywords are ignored.
 * Returns the first problem found, or undefined when the value conforms.
 */
export function validateJson(schema: unknown, value: unknown, path = '$'): string | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const s = schema as Record<string, unknown>;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => hasType(value, t))) return `${path}: expected ${types.join('|')}`;
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) return `${path}: not one of the allowed values`;
  if ('const' in s && !deepEqual(s.const, value)) return `${path}: not the expected constant`;
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) return `${path}: below ${s.minimum}`;
    if (typeof s.maximum === 'number' && value > s.maximum) return `${path}: above ${s.maximum}`;
  }
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && value.length < s.minLength) return `${path}: shorter than ${s.minLength}`;
    if (typeof s.maxLength === 'number' && value.length > s.maxLength) return `${path}: longer than ${s.maxLength}`;
    if (typeof s.pattern === 'string' && !safeRegex(s.pattern)?.test(value)) return `${path}: does not match ${s.pattern}`;
  }
  if (Array.isArray(value) && s.items !== undefined) {
    for (const [i, item] of value.entries()) {
      const problem = validateJson(s.items, item, `${path}[${i}]`);
      if (problem) return problem;
    }
  }
  if (isObject(value)) {
    for (const key of Array.isArray(s.required) ? s.required : []) {
      if (typeof key === 'string' && !(key in value)) return `${path}: missing ${key}`;
    }
    const properties = isObject(s.properties) ? s.properties : {};
    for (const [key, sub] of Object.entries(properties)) {
      if (key in value) {
        const problem = validateJson(sub, value[key], `${path}.${key}`);
        if (problem) return problem;
      }
    }
    if (s.additionalProperties === false) {
      const extra = Object.keys(value).find((k) => !(k in properties));
      if (extra !== undefined) return `${path}: unexpected property ${extra}`;
    }
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasType(value: unknown, type: unknown): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    default:
      return true;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function safeRegex(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern, 'u');
  } catch {
    return undefined;
  }
}
