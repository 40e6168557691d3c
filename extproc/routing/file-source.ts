import type { Logger } from '../../common/logger.js';
import { parseStructured } from '../../common/structured-file.js';
import { WatchedFile } from '../../common/watched-file.js';
import { HostIndex } from './host-index.js';
import { routingFileSchema, type RoutingFile, type RoutingStateSource } from './state.js';

/** Routing state from a YAML/JSON file, reloaded on change; a bad edit keeps the last good state. */
export class FileRoutingSource implements RoutingStateSource {
  private readonly index = new HostIndex();
  private readonly watched: WatchedFile<RoutingFile>;
  private loaded = false;

  constructor(file: string, logger: Logger) {
    this.watched = new WatchedFile({
      file,
      logger: logger.child({ source: 'routing-file' }),
      parse: (text) => parseStructured(text, routingFileSchema, file),
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
}
