import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { isFledgeMessage, type PrimaryMessage, type SiblingNews, type WorkerMessage, type WorkerQuestion } from './messages.js';

export interface WorkerAnswers {
  ready(): boolean;
  state(): unknown;
  coverage?(): Promise<unknown>;
}

type NewsKind = SiblingNews['kind'];

/**
 * A worker's end of the IPC channel to the `fledge extproc --workers N` primary: it answers
 * the primary's admin questions, hands prom-client the registry to aggregate, and passes
 * news to and from the sibling workers.
 */
export class WorkerLink {
  private readonly listeners = new Map<NewsKind, (payload: unknown) => void>();
  private answers: WorkerAnswers | undefined;

  constructor(
    readonly index: number,
    private readonly logger: Logger,
    private readonly send: (message: WorkerMessage) => void = (message) => process.send?.(message),
  ) {
    process.on('message', (message: unknown) => {
      if (isFledgeMessage(message)) void this.receive(message as PrimaryMessage);
    });
  }

  /** The registry the primary's /metrics sums (prom-client answers its requests itself). */
  exportMetrics(registry: Registry): void {
    new AggregatorRegistry(); // registers prom-client's worker-side listener
    AggregatorRegistry.setRegistries([registry]);
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
  }

  private async receive(message: PrimaryMessage): Promise<void> {
    if (message.type === 'fledge:news') {
      try {
        this.listeners.get(message.kind)?.(message.payload);
      } catch (err) {
        this.logger.warn({ kind: message.kind, err: (err as Error).message }, 'news from a sibling worker could not be applied');
      }
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
    return (await this.answers.coverage?.()) ?? null;
  }
}
