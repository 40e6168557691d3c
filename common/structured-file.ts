import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './config-error.js';

/** Parses YAML (a superset of JSON) text and validates it against a schema. */
export function parseStructured<S extends z.ZodType>(text: string, schema: S, source: string): z.output<S> {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(source, [{ path: '', message: `not valid YAML/JSON: ${(err as Error).message}` }]);
  }
  const result = schema.safeParse(raw ?? {});
  if (!result.success) throw ConfigError.fromZod(source, result.error);
  return result.data;
}

export function loadStructuredFile<S extends z.ZodType>(file: string, schema: S): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return parseStructured(text, schema, file);
}
