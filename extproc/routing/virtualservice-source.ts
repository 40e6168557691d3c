import { CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { Backoff } from './backoff.js';
import { HostIndex } from './host-index.js';
import type { RoutingStateSource, ServiceRouting } from './state.js';
import { parseVirtualService } from './virtualservice-parse.js';

const SHORT_WATCH_MS = 5_000;

export const VIRTUAL_SERVICE = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' } as const;

export interface VirtualServiceSourceOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; all namespaces when absent. */
  namespace?: string;
  /** start() rejects if the first list has not succeeded by then. */
  syncTimeoutMs?: number;
  /** Server-side watch timeout: the watch is renewed this often even when idle. */
  watchTimeoutSeconds?: number;
  backoff?: Backoff;
}

interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

interface Entry {
  resourceVersion: string;
  hosts: string[];
  routing: ServiceRouting;
}

/** A watch ended on purpose (410 Gone: relist) or by the server's timeout. */
class WatchEnded {
  constructor(readonly relist: boolean) {}
}

/**
 * Cluster-mode routing state: list + watch of Istio VirtualServices, each turned into a
 * service's routing state by parseVirtualService. A VirtualService that cannot be
 * understood is logged and skipped, keeping its last good state; watch errors keep all
 * state and reconnect with backoff (from the last resourceVersion; relisting on 410 Gone).
 */
export class VirtualServiceRoutingSource implements RoutingStateSource {
  private readonly index = new HostIndex();
  private readonly good = new Map<string, Entry>();
  /** namespace/name → why it was skipped (its last good state, if any, stays in force). */
  private readonly rejected = new Map<string, string>();
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;
  private readonly backoff: Backoff;
  private readonly logger: Logger;
  private resourceVersion = '';
  private synced = false;
  private stopped = false;
  private generationCount = 0;
  private lastError: string | undefined;
  private watchesOpened = 0;
  /** Host conflicts already reported, so a lasting conflict is logged once, not on every event. */
  private reportedConflicts = new Set<string>();
  private currentWatch: AbortController | undefined;
  private wake: (() => void) | undefined;
  private onSynced: (() => void) | undefined;

  constructor(
    private readonly options: VirtualServiceSourceOptions,
    logger: Logger,
  ) {
    this.logger = logger.child({ source: 'routing-virtualservice', namespace: options.namespace ?? '*' });
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(options.kubeConfig);
    this.backoff = options.backoff ?? new Backoff();
  }

  get generation(): number {
    return this.generationCount;
  }

  ready(): boolean {
    return this.synced;
  }

  lookup(host: string): ServiceRouting | undefined {
    return this.index.lookup(host);
  }

  snapshot(): ServiceRouting[] {
    return this.index.snapshot();
  }

  diagnostics(): Record<string, unknown> {
    return {
      source: 'virtualservice',
      namespace: this.options.namespace ?? null,
      resourceVersion: this.resourceVersion || null,
      lastError: this.lastError ?? null,
      watchesOpened: this.watchesOpened,
      skipped: Object.fromEntries(this.rejected),
    };
  }

  async start(): Promise<void> {
    this.stopped = false;
    const timeoutMs = this.options.syncTimeoutMs ?? 30_000;
    const synced = new Promise<void>((resolve) => (this.onSynced = resolve));
    void this.run();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.stop();
        reject(new Error(`cannot list VirtualServices (${this.where()}) within ${timeoutMs} ms: ${this.lastError ?? 'no answer'}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([synced, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    this.currentWatch?.abort();
    this.wake?.();
  }

  private where(): string {
    const server = this.options.kubeConfig.getCurrentCluster()?.server ?? 'no cluster';
    return `${server}, ${this.options.namespace ? `namespace ${this.options.namespace}` : 'all namespaces'}`;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        if (this.stopped) break;
        const openedAt = Date.now();
        const ended = await this.watchOnce();
        if (ended.relist) this.resourceVersion = '';
        // A watch that lasted is healthy; one the server (or a proxy) ends at once must not
        // turn into a tight reconnect loop.
        if (Date.now() - openedAt >= SHORT_WATCH_MS) this.backoff.reset();
        else if (!this.stopped) await this.sleep(this.backoff.next());
      } catch (err) {
        if (this.stopped) break;
        this.lastError = describeError(err);
        if (errorCode(err) === 410) this.resourceVersion = '';
        const delayMs = this.backoff.next();
        this.logger.warn({ err: this.lastError, delayMs, ready: this.synced }, 'VirtualService list/watch failed; keeping the last good state and retrying');
        await this.sleep(delayMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async relist(): Promise<void> {
    const { group, version, plural } = VIRTUAL_SERVICE;
    const namespace = this.options.namespace;
    const list = (namespace
      ? await this.api.listNamespacedCustomObject({ group, version, plural, namespace })
      : await this.api.listClusterCustomObject({ group, version, plural })) as { items?: KubeObject[]; metadata?: { resourceVersion?: string } };
    const seen = new Set<string>();
    for (const item of list.items ?? []) {
      seen.add(keyOf(item));
      this.upsert(item);
    }
    for (const key of [...this.good.keys()]) if (!seen.has(key)) this.good.delete(key);
    for (const key of [...this.rejected.keys()]) if (!seen.has(key)) this.rejected.delete(key);
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.rebuild();
    if (!this.synced) this.logger.info({ virtualServices: list.items?.length ?? 0, services: this.index.snapshot().length }, 'VirtualServices listed; routing state ready');
    this.synced = true;
    this.lastError = undefined;
    this.onSynced?.();
  }

  private watchOnce(): Promise<WatchEnded> {
    const { group, version, plural } = VIRTUAL_SERVICE;
    const path = this.options.namespace
      ? `/apis/${group}/${version}/namespaces/${encodeURIComponent(this.options.namespace)}/${plural}`
      : `/apis/${group}/${version}/${plural}`;
    const query = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: this.options.watchTimeoutSeconds ?? 300 };
    return new Promise<WatchEnded>((resolve, reject) => {
      let relist = false;
      let failure: unknown;
      const onEvent = (type: string, obj: KubeObject & { code?: number; message?: string }) => {
        if (type === 'ERROR') {
          // A Status object: 410 Gone means our resourceVersion is too old; relist.
          if (obj.code === 410) relist = true;
          else failure = new Error(`watch error ${obj.code ?? '?'}: ${obj.message ?? JSON.stringify(obj)}`);
          this.currentWatch?.abort();
          return;
        }
        if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') {
          this.upsert(obj);
          this.rebuild();
        } else if (type === 'DELETED') {
          const key = keyOf(obj);
          const had = this.good.delete(key);
          this.rejected.delete(key);
          if (had) {
            this.logger.info({ virtualService: key }, 'VirtualService deleted; its routing state is gone');
            this.rebuild();
          }
        }
      };
      const onDone = (err: unknown) => {
        this.currentWatch = undefined;
        if (this.stopped) resolve(new WatchEnded(false));
        else if (failure) reject(failure);
        else if (err && !isAbort(err)) reject(err);
        else resolve(new WatchEnded(relist));
      };
      this.watcher.watch(path, query, onEvent, onDone).then(
        (controller) => {
          // done() may already have run (a failed connect); only keep a live watch.
          if (!this.stopped && this.currentWatch === undefined && !controller.signal.aborted) {
            this.currentWatch = controller;
            this.watchesOpened++;
          }
          else if (this.stopped) controller.abort();
        },
        reject,
      );
    });
  }

  /** Parses one VirtualService into `good`, or records why it was skipped. */
  private upsert(obj: KubeObject): void {
    const key = keyOf(obj);
    const resourceVersion = obj.metadata?.resourceVersion ?? '';
    if (this.good.get(key)?.resourceVersion === resourceVersion && resourceVersion) return;
    const parsed = parseVirtualService(obj);
    if (parsed.ok) {
      this.good.set(key, { resourceVersion, hosts: parsed.hosts, routing: parsed.routing });
      this.rejected.delete(key);
      return;
    }
    const kept = this.good.get(key);
    this.rejected.set(key, parsed.reason);
    this.logger.error(
      { virtualService: key, resourceVersion, reason: parsed.reason, keptLastGood: kept !== undefined },
      `VirtualService ${key} skipped: ${parsed.reason}`,
    );
  }

  private rebuild(): void {
    const entries = [...this.good.entries()].sort(([a], [b]) => a.localeCompare(b));
    const owner = new Map<string, string>();
    const conflicts = new Set<string>();
    for (const [key, entry] of entries) {
      for (const host of new Set([entry.routing.service, ...entry.hosts])) {
        const previous = owner.get(host);
        if (previous !== undefined && previous !== key) {
          const conflict = `${host} ${previous} ${key}`;
          conflicts.add(conflict);
          if (!this.reportedConflicts.has(conflict)) {
            this.logger.warn({ host, virtualServices: [previous, key], winner: key }, `two VirtualServices claim host ${host}; the later by namespace/name (${key}) wins`);
          }
        }
        owner.set(host, key);
      }
    }
    this.reportedConflicts = conflicts;
    this.index.replace(entries.map(([, e]) => ({ routing: e.routing, hosts: e.hosts })));
    this.generationCount++;
  }
}

function keyOf(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || /aborted/i.test(err.message));
}

function errorCode(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.code === 'number') return e.code;
    if (typeof e.statusCode === 'number') return e.statusCode;
  }
  return undefined;
}

function describeError(err: unknown): string {
  const code = errorCode(err);
  if (err && typeof err === 'object' && 'body' in err) {
    const body = (err as { body: unknown }).body;
    let message = typeof body === 'string' ? body : JSON.stringify(body);
    try {
      const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string });
      if (parsed?.message) message = parsed.message;
    } catch {
      // not JSON: keep the raw body
    }
    return `HTTP ${code ?? '?'}: ${message}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return code !== undefined ? `HTTP ${code}: ${message}` : message;
}
