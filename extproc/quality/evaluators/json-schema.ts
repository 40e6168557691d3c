import { Ajv, type ValidateFunction } from 'ajv';

/**
 * JSON Schema checks for golden answers and `response_format` requests, by Ajv. Schemas are
 * compiled once and cached (bounded: request-supplied schemas vary); a schema Ajv cannot
 * compile, or one over the size limit, is reported as a problem rather than thrown.
 */
const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: true });
const MAX_SCHEMA_BYTES = 64 * 1024;
const MAX_CACHED = 256;
const compiled = new Map<string, ValidateFunction | string>();
/** By identity: a golden entry's schema is one object for the process's life, so it is never stringified again. */
const byObject = new WeakMap<object, ValidateFunction | string>();

/** The first problem with `value` against `schema` ("$.path: reason"), or undefined when it conforms. */
export function validateJson(schema: unknown, value: unknown): string | undefined {
  const validate = compile(schema);
  if (typeof validate === 'string') return validate;
  if (validate(value)) return undefined;
  const error = validate.errors?.[0];
  if (!error) return '$: does not conform';
  const path = error.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p.replaceAll('~1', '/').replaceAll('~0', '~')}`)).join('');
  return `$${path}: ${error.message ?? 'does not conform'}`;
}

function compile(schema: unknown): ValidateFunction | string {
  if (typeof schema !== 'object' || schema === null) return '$: the schema is not an object';
  const known = byObject.get(schema);
  if (known !== undefined) return known;
  const result = compileByText(schema);
  byObject.set(schema, result);
  return result;
}

/** Request-supplied schemas are new objects every time: cached by their text (bounded). */
function compileByText(schema: object): ValidateFunction | string {
  const key = JSON.stringify(schema);
  const hit = compiled.get(key);
  if (hit) return hit;
  let result: ValidateFunction | string;
  if (key.length > MAX_SCHEMA_BYTES) result = `$: the schema is over ${MAX_SCHEMA_BYTES} bytes`;
  else {
    try {
      result = ajv.compile(schema as object);
    } catch (err) {
      result = `$: invalid schema: ${(err as Error).message}`;
    }
  }
  if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value as string);
  compiled.set(key, result);
  return result;
}
