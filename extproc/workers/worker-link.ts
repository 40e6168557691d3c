import type { Logger } from '../../common/logger.js';
import { isFledgeMessage, type PrimaryMessage, type SiblingNews, type WorkerMessage, type WorkerQuestion } from './messages.js';

export interface WorkerAnswers {
  ready(): boolean | Promise<boolean>;
  state(): unknown;
  coverage?(): Promise<unknown>;
  /** The registry as prom-client's getMetricsAsJSON gives it; the primary aggregates. */
  metrics(): Promise<unknown>;
}

/** How long a starting worker waits for the primary's welcome before it serves without it. */
const WELCOME_TIMEOUT_MS = 5_000;

type NewsKind = SiblingNews['kind'];

/**
 * A worker's end of the IPC channel to the `fledge extproc --workers N` primary: it answers
 * the primary's admin questions and passes news to and from the sibling workers. News that
 * comes before its listener (the welcome's trips, before the guardrail exists) waits for it.
 */
export class WorkerLink {
  private readonly listeners = new Map<NewsKind, (payload: unknown) => void>();
  private readonly waiting: SiblingNews[] = [];
  private answers: WorkerAnswers | undefined;
  private welcomed: (() => void) | undefined;

  constructor(
    readonly index: number,
    private readonly logger: Logger,
    private readonly send: (message: WorkerMessage) => void = (message) => process.send?.(message),
  ) {
    process.on('message', (message: unknown) => {
      if (isFledgeMessage(message)) void this.receive(message as PrimaryMessage);
    });
  }

  /**
   * Says hello and waits for the primary's welcome: the trips and nonces the siblings hold,
   * applied before this worker serves anyone (a restarted worker must not route users to a
   * canary its siblings took off).
   */
  hello(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn('no welcome from the extproc primary: serving without the siblings’ trips');
        resolve();
      }, WELCOME_TIMEOUT_MS);
      this.welcomed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.send({ type: 'fledge:hello' });
    });
  }

  serve(answers: WorkerAnswers): void {
    this.answers = answers;
  }

  listening(address: string): void {
    this.send({ type: 'fledge:listening', address });
  }

  /** Resolves once the message is on its way: the worker exits right after. */
  failed(message: string): Promise<void> {
    return new Promise((resolve) => {
      if (!process.send) return resolve();
      process.send({ type: 'fledge:failed', message } satisfies WorkerMessage, undefined, undefined, () => resolve());
    });
  }

  tell(news: SiblingNews): void {
    this.send({ type: 'fledge:news', ...news });
  }

  on(kind: NewsKind, listener: (payload: unknown) => void): void {
    this.listeners.set(kind, listener);
    const held = this.waiting.filter((n) => n.kind === kind);
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((n) => n.kind !== kind));
    for (const news of held) this.apply(news);
  }

  private apply(news: SiblingNews): void {
    const listener = this.listeners.get(news.kind);
    if (!listener) {
      if (this.waiting.length < 10_000) this.waiting.push(news);
      return;
    }
    try {
      listener(news.payload);
    } catch (err) {
      this.logger.warn({ kind: news.kind, err: (err as Error).message }, 'news from a sibling worker could not be applied');
    }
  }

  private async receive(message: PrimaryMessage): Promise<void> {
    if (message.type === 'fledge:news') return this.apply({ kind: message.kind, payload: message.payload } as SiblingNews);
    if (message.type === 'fledge:welcome') {
      for (const news of Array.isArray(message.news) ? message.news : []) this.apply(news);
      this.welcomed?.();
      return;
    }
    if (message.type === 'fledge:ask') {
      try {
        this.send({ type: 'fledge:answer', id: message.id, body: await this.answer(message.what) });
      } catch (err) {
        this.send({ type: 'fledge:answer', id: message.id, error: (err as Error).message });
      }
    }
  }

  private async answer(what: WorkerQuestion): Promise<unknown> {
    if (!this.answers) return what === 'ready' ? false : null; // still starting
    if (what === 'ready') return this.answers.ready();
    if (what === 'state') return this.answers.state();
    if (what === 'metrics') return this.answers.metrics();
    return (await this.answers.coverage?.()) ?? null;
  }
}
