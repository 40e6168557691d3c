import type { z } from 'zod';

/** A user-supplied file or value is wrong: says which file, where in it, and why. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: { path: string; message: string }[],
  ) {
    super(`${source}: ${problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ')}`);
    this.name = 'ConfigError';
  }

  static fromZod(source: string, error: z.ZodError): ConfigError {
    return new ConfigError(
      source,
      error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })),
    );
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
}
