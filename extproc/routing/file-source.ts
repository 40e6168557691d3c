import type { Logger } from '../../common/logger.js';
import { WatchedFile } from '../../common/watched-file.js';
import { HostIndex } from './host-index.js';
import { parseRoutingFile, type RoutingFile, type RoutingStateSource } from './state.js';

/** Routing state from a YAML/JSON file, reloaded on change; a bad edit keeps the last good state. */
export class FileRoutingSource implements RoutingStateSource {
  private readonly index = new HostIndex();
  private readonly watched: WatchedFile<RoutingFile>;
  private loaded = false;

  constructor(
    private readonly file: string,
    logger: Logger,
  ) {
    this.watched = new WatchedFile({
      file,
      logger: logger.child({ source: 'routing-file' }),
      parse: (text) => parseRoutingFile(text, file),
      onValue: (value) => {
        this.index.replace(
          Object.entries(value.services).map(([service, s]) => ({
            hosts: s.hosts,
            routing: {
              service,
              stable: s.stable,
              canary: s.canary,
              canaryWeight: s.canaryWeight,
              killed: s.killed,
              rolloutHashes: s.rolloutHashes,
              ...(s.routeToken ? { routeToken: s.routeToken } : {}),
              ...(s.routeToken && s.routesReportServedBy ? { routesReportServedBy: true } : {}),
              ...(s.guardrail ? { guardrail: s.guardrail } : {}),
              ...(s.canary && s.shadowPercent > 0 ? { shadowPercent: s.shadowPercent } : {}),
            },
          })),
        );
        this.loaded = true;
      },
    });
  }

  async start(): Promise<void> {
    await this.watched.start();
  }

  stop(): void {
    this.watched.stop();
  }

  ready(): boolean {
    return this.loaded;
  }

  lookup(host: string) {
    return this.index.lookup(host);
  }

  snapshot() {
    return this.index.snapshot();
  }

  get generation(): number {
    return this.watched.generation;
  }

  /** For /debug/state: the file and why its last version was rejected (null: in force). */
  diagnostics(): Record<string, unknown> {
    return { source: 'file', file: this.file, generation: this.watched.generation, lastError: this.watched.lastError ?? null };
  }
}
