import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import {
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type JsonValue,
  type Logger as OpenFeatureLogger,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import type { Logger } from '../../common/logger.js';
import { ConfigError } from '../../common/config-error.js';
import { WatchedFile } from '../../common/watched-file.js';

/** pino speaks OpenFeature's logger interface through this adapter. */
export function openFeatureLogger(logger: Logger): OpenFeatureLogger {
  const text = (args: unknown[]) => args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
  return {
    error: (...args) => logger.error(text(args)),
    warn: (...args) => logger.warn(text(args)),
    info: (...args) => logger.info(text(args)),
    debug: (...args) => logger.debug(text(args)),
  };
}

/**
 * Checks a flagd flag file against flagd's schema (strictly, unlike flagd's lenient
 * default) and returns the flag keys; throws a ConfigError naming the file and the problem.
 */
export function validateFlagdText(text: string, source: string, logger: OpenFeatureLogger): string[] {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const scratch = new MemoryStorage(logger);
  try {
    scratch.setConfigurations(text, true);
  } catch (err) {
    throw new ConfigError(source, describeParseError(err));
  }
  return [...scratch.getFlags().keys()];
}

function describeParseError(err: unknown): { path: string; message: string }[] {
  const message = (err as Error).message ?? String(err);
  // flagd-core embeds ajv's error list as JSON after a colon.
  const json = message.slice(message.indexOf('['));
  try {
    const issues = JSON.parse(json) as { instancePath?: string; message?: string; params?: unknown }[];
    return issues.map((i) => ({
      path: (i.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.'),
      message: `${i.message ?? 'invalid'}${i.params ? ` ${JSON.stringify(i.params)}` : ''}`,
    }));
  } catch {
    const cause = (err as { cause?: Error }).cause?.message;
    return [{ path: '', message: cause ? `${message}: ${cause}` : message }];
  }
}

/**
 * flagd's in-process resolver (flagd-core) over a flag file that is reloaded on change.
 * A bad edit is logged and rejected; the last good flags stay in force.
 */
export class FlagdFileProvider implements Provider {
  readonly metadata = { name: 'flagd-in-process-file' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  private readonly storage: MemoryStorage;
  private readonly core: FlagdCore;
  private readonly watched: WatchedFile<string>;
  private readonly ofLogger: OpenFeatureLogger;
  private clockInTargeting = false;

  constructor(readonly file: string, logger: Logger) {
    const log = logger.child({ source: 'flag-file' });
    this.ofLogger = openFeatureLogger(log);
    this.storage = new MemoryStorage(this.ofLogger);
    this.core = new FlagdCore(this.storage, this.ofLogger);
    this.watched = new WatchedFile<string>({
      file,
      logger: log,
      parse: (text) => {
        validateFlagdText(text, file, this.ofLogger);
        return text;
      },
      onValue: (text) => {
        const changed = this.storage.setConfigurations(text, true);
        // flagd adds $flagd.timestamp to every context; a file mentioning it targets by time.
        this.clockInTargeting = text.includes('$flagd.timestamp');
        if (changed.length > 0) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: changed });
      },
    });
  }

  get generation(): number {
    return this.watched.generation;
  }

  get lastError(): string | undefined {
    return this.watched.lastError;
  }

  /** The flags in force read the clock (`$flagd.timestamp`), so an outcome depends on more than the context. */
  readsClock(): boolean {
    return this.clockInTargeting;
  }

  hasFlag(key: string): boolean {
    return this.storage.getFlag(key) !== undefined;
  }

  /** The flag's default variant and its value, from the flags in force (undefined: no such flag or no default). */
  defaultVariant(key: string): { variant: string; value: unknown } | undefined {
    const flag = this.storage.getFlag(key);
    const variant = flag?.defaultVariant;
    if (!flag || variant === undefined) return undefined;
    return { variant, value: flag.variants.get(variant) };
  }

  /** The flag's variants (name → value) in force; undefined when there is no such flag. */
  variants(key: string): ReadonlyMap<string, unknown> | undefined {
    return this.storage.getFlag(key)?.variants;
  }

  async initialize(): Promise<void> {
    await this.watched.start();
  }

  async onClose(): Promise<void> {
    this.watched.stop();
  }

  async resolveBooleanEvaluation(key: string, dflt: boolean, ctx: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return this.core.resolveBooleanEvaluation(key, dflt, ctx, this.ofLogger);
  }

  async resolveStringEvaluation(key: string, dflt: string, ctx: EvaluationContext): Promise<ResolutionDetails<string>> {
    return this.core.resolveStringEvaluation(key, dflt, ctx, this.ofLogger);
  }

  async resolveNumberEvaluation(key: string, dflt: number, ctx: EvaluationContext): Promise<ResolutionDetails<number>> {
    return this.core.resolveNumberEvaluation(key, dflt, ctx, this.ofLogger);
  }

  async resolveObjectEvaluation<T extends JsonValue>(key: string, dflt: T, ctx: EvaluationContext): Promise<ResolutionDetails<T>> {
    return this.core.resolveObjectEvaluation(key, dflt, ctx, this.ofLogger) as ResolutionDetails<T>;
  }
}
