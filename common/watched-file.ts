import { readFile, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from './config-error.js';
import type { Logger } from './logger.js';

export interface WatchedFileOptions<T> {
  file: string;
  /** Turns the file's text into a value; throws (ideally a ConfigError) when the text is bad. */
  parse: (text: string) => T;
  /** Called with every good value that differs from the previous text. */
  onValue: (value: T) => void;
  logger: Logger;
  /** Safety-net poll for filesystems where inotify events are lost (ConfigMap symlink swaps). */
  pollMs?: number;
}

/**
 * Keeps a value in sync with a file. The directory is watched (editors and Kubernetes
 * replace files by rename), and a slow poll covers missed events. A bad file is logged
 * and ignored: the last good value stays in force.
 */
export class WatchedFile<T> {
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  private lastMtimeMs = 0;
  private pending: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();
  /** Number of good loads; tests and /debug endpoints read it. */
  generation = 0;
  lastError: string | undefined;

  constructor(private readonly options: WatchedFileOptions<T>) {}

  /** Loads the file once; throws if the first load fails (a process must not start on bad input). */
  async start(): Promise<T> {
    let text: string;
    try {
      text = await readFile(this.options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(this.options.file, [{ path: '', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
    }
    const value = this.options.parse(text);
    this.lastText = text;
    this.lastMtimeMs = (await stat(this.options.file)).mtimeMs;
    this.generation++;
    this.options.onValue(value);
    const dir = dirname(this.options.file);
    const name = basename(this.options.file);
    try {
      this.watcher = watch(dir, (_event, changed) => {
        if (!changed || changed === name || changed.startsWith('..')) this.schedule();
      });
      this.watcher.on('error', (err) => this.options.logger.warn({ err, file: this.options.file }, 'file watch failed; polling only'));
    } catch (err) {
      this.options.logger.warn({ err, file: this.options.file }, 'cannot watch directory; polling only');
    }
    this.poller = setInterval(() => void this.pollMtime(), this.options.pollMs ?? 2000);
    this.poller.unref();
    return value;
  }

  stop(): void {
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.pending) clearTimeout(this.pending);
  }

  private schedule(): void {
    if (this.pending) clearTimeout(this.pending);
    // Writers often truncate then write: wait for the burst of events to settle.
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.reading = this.reading.then(() => this.reload());
    }, 30);
  }

  private async pollMtime(): Promise<void> {
    try {
      const { mtimeMs } = await stat(this.options.file);
      if (mtimeMs !== this.lastMtimeMs) this.schedule();
    } catch {
      /* a missing file is reported by reload when an event arrives */
    }
  }

  private async reload(): Promise<void> {
    const { file, logger } = this.options;
    let text: string;
    try {
      this.lastMtimeMs = (await stat(file)).mtimeMs;
      text = await readFile(file, 'utf8');
    } catch (err) {
      this.lastError = `cannot read: ${(err as Error).message}`;
      logger.error({ file, err: (err as Error).message }, 'cannot read watched file; keeping the last good version');
      return;
    }
    if (text === this.lastText) return;
    try {
      const value = this.options.parse(text);
      this.lastText = text;
      this.lastError = undefined;
      this.generation++;
      this.options.onValue(value);
      logger.info({ file, generation: this.generation }, 'reloaded');
    } catch (err) {
      this.lastText = text;
      this.lastError = (err as Error).message;
      logger.error({ file, error: (err as Error).message }, 'rejected a bad version of the file; keeping the last good version');
    }
  }
}
