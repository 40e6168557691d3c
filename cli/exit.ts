import { ConfigError } from '../common/config-error.js';

/** Prints what went wrong in one or a few lines (never a stack trace for user errors) and exits. */
export function exitOnError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`fledge: invalid ${err.source}\n${err.problems.map((p) => `  ${p.path || '(file)'}: ${p.message}`).join('\n')}\n`);
    process.exit(2);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`fledge: ${message}\n`);
  if (process.env.FLEDGE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

/** On SIGINT or SIGTERM: log, stop the running component, exit 0. */
export function stopOnSignals(stop: () => Promise<unknown>, logger: { info: (obj: object, msg: string) => void }): void {
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    void stop().finally(() => process.exit(0));
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}
