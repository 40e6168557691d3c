import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { CoverageReport } from '../../common/evaluator-coverage-report.js';
import type { Logger } from '../../common/logger.js';
import { startAdminServer } from '../admin.js';
import type { ExtprocConfig } from '../config.js';
import { canaryKeyText } from '../guardrail/guardrail.js';
import { removeStaleSocket } from '../listen-socket.js';
import { isFledgeMessage, WORKER_INDEX_ENV, type PrimaryMessage, type SiblingNews, type WorkerMessage, type WorkerQuestion } from './messages.js';
import { KeptNonces } from './kept-nonces.js';
import { agreedState, type WorkerState } from './worker-states.js';

export interface RunningWorkers {
  /** What the workers' gRPC listens on: `host:port` or `unix:/path`. */
  grpcAddress: string;
  adminPort: number;
  stop(): Promise<void>;
}

interface Slot {
  index: number;
  worker?: Worker;
  listening: boolean;
  startedAt: number;
  /** Exits in a row within QUICK_EXIT_MS of starting: the restart waits longer each time. */
  quickExits: number;
}

const QUICK_EXIT_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
const ANSWER_TIMEOUT_MS = 2_000;
const STOP_TIMEOUT_MS = 10_000;
/** Trips kept for workers that start later; a retired canary's trip is dropped when a worker reports it cleared. */
const MAX_KEPT_TRIPS = 1_000;

/**
 * `fledge extproc --workers N`: N worker processes (node:cluster) share the ext_proc port,
 * each a whole extproc (routing source, flags, guardrail, quality) reading the same config.
 * This primary decides nothing itself: it starts and restarts the workers, relays what one
 * of them must tell the others (guardrail trips, accepted probe nonces), and serves the
 * admin port for all of them: /metrics is every worker's series (labelled with its number),
 * /readyz is every worker ready, /debug/state the routing state every worker runs.
 */
export async function startExtprocWorkers(config: ExtprocConfig, logger: Logger): Promise<RunningWorkers> {
  const log = logger.child({ role: 'primary' });
  const count = config.workers;
  const socket = config.grpc.socket;
  const own = new Registry();
  const running = new Gauge({ name: 'fledge_extproc_workers', help: 'extproc worker processes listening (of --workers N).', registers: [own] });
  const restarts = new Counter({ name: 'fledge_extproc_worker_restarts_total', help: 'extproc worker processes that exited unasked and were started again.', registers: [own] });
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ index: i + 1, listening: false, startedAt: 0, quickExits: 0 }));
  const trips = new Map<string, unknown>();
  const nonces = new KeptNonces();
  const pending = new Map<number, (answer: Omit<WorkerState, 'index'>) => void>();
  let nextQuestion = 1;
  let stopping = false;
  let grpcAddress = '';
  let startup: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const started = new Promise<void>((resolve, reject) => (startup = { resolve, reject }));
  let lastAgreed: Record<string, unknown> | undefined;

  const live = () => slots.filter((s) => s.worker !== undefined && s.listening);
  const send = (slot: Slot, message: PrimaryMessage) => {
    if (slot.worker?.isConnected()) slot.worker.send(message);
  };

  const onMessage = (slot: Slot, message: WorkerMessage) => {
    switch (message.type) {
      case 'fledge:hello': {
        // A worker that starts after a trip (or a probe) learns it before it serves anyone.
        const news: SiblingNews[] = [...trips.values()].map((payload) => ({ kind: 'guardrail-trip', payload }));
        news.push({ kind: 'nonces', payload: nonces.batch() });
        send(slot, { type: 'fledge:welcome', news });
        return;
      }
      case 'fledge:listening':
        slot.listening = true;
        grpcAddress = message.address;
        running.set(live().length);
        if (live().length === count) startup?.resolve();
        return;
      case 'fledge:failed':
        startup?.reject(new Error(`extproc worker ${slot.index} failed to start: ${message.message}`));
        return;
      case 'fledge:answer':
        pending.get(message.id)?.({ body: message.body, error: message.error });
        return;
      case 'fledge:news': {
        if (message.kind === 'guardrail-trip' || message.kind === 'guardrail-cleared') {
          const key = tripKey(message.payload);
          if (key === undefined) return;
          if (message.kind === 'guardrail-cleared') return void trips.delete(key);
          if (trips.size < MAX_KEPT_TRIPS) trips.set(key, message.payload);
        }
        if (message.kind === 'nonces') nonces.add(message.payload);
        for (const other of live()) if (other !== slot) send(other, message);
        return;
      }
    }
  };

  const fork = (slot: Slot) => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index) });
    Object.assign(slot, { worker, listening: false, startedAt: Date.now() });
    worker.on('message', (message: unknown) => {
      if (isFledgeMessage(message)) onMessage(slot, message as WorkerMessage);
    });
    worker.on('exit', (code, signal) => {
      slot.worker = undefined;
      slot.listening = false;
      running.set(live().length);
      if (stopping) return;
      if (startup) {
        startup.reject(new Error(`extproc worker ${slot.index} exited (${signal ?? `code ${code}`}) before it listened; its log says why`));
        return;
      }
      slot.quickExits = Date.now() - slot.startedAt < QUICK_EXIT_MS ? slot.quickExits + 1 : 0;
      const delay = slot.quickExits === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (slot.quickExits - 1));
      restarts.inc();
      log.error({ worker: slot.index, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'extproc worker exited; starting it again (the other workers keep serving)');
      setTimeout(() => {
        if (!stopping && slot.worker === undefined) fork(slot);
      }, delay).unref();
    });
  };

  /** Asks every listening worker; a worker that does not answer in time is reported with an error. */
  const ask = async (what: WorkerQuestion): Promise<WorkerState[]> =>
    Promise.all(
      live().map(
        (slot) =>
          new Promise<WorkerState>((resolve) => {
            const id = nextQuestion++;
            const timer = setTimeout(() => finish({ error: `no answer in ${ANSWER_TIMEOUT_MS} ms` }), ANSWER_TIMEOUT_MS);
            const finish = (answer: Omit<WorkerState, 'index'>) => {
              clearTimeout(timer);
              pending.delete(id);
              resolve({ index: slot.index, ...answer });
            };
            pending.set(id, finish);
            send(slot, { type: 'fledge:ask', id, what });
          }),
      ),
    );

  const stop = async () => {
    stopping = true;
    await Promise.all(
      slots.map(async ({ worker }) => {
        if (!worker || worker.isDead()) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.process.kill('SIGTERM');
        const timer = setTimeout(() => worker.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  };

  log.info({ workers: count }, 'starting extproc workers');
  if (socket !== undefined) removeStaleSocket(socket);
  for (const slot of slots) fork(slot);
  try {
    await started;
  } catch (err) {
    await stop();
    throw err;
  } finally {
    startup = undefined;
  }

  const admin = await startAdminServer(
    config.admin.host,
    config.admin.port,
    {
      registry: {
        contentType: own.contentType,
        // A worker that does not answer in time is left out of this scrape, not the whole scrape failed.
        metrics: async () => {
          const answered = (await ask('metrics')).map((a) => a.body).filter((b): b is MetricObjectWithValues<MetricValue<string>>[] => Array.isArray(b));
          return `${await AggregatorRegistry.aggregate(answered).metrics()}\n${await own.metrics()}`;
        },
      },
      ready: async () => live().length === count && (await ask('ready')).every((a) => a.body === true),
      debugState: async () => {
        const view = agreedState(await ask('state'), count, lastAgreed);
        lastAgreed = view.agreed;
        return view.state;
      },
      coverage: async () => {
        const report = sumProbesSeen((await ask('coverage')).map((a) => a.body as CoverageReport | null));
        if (!report) throw new Error('no extproc worker answered');
        return report;
      },
    },
    log,
  );
  log.info({ workers: count, address: grpcAddress }, 'ext_proc gRPC listening in every worker');

  return {
    grpcAddress,
    adminPort: admin.port,
    async stop() {
      await stop();
      await new Promise<void>((resolve) => admin.server.close(() => resolve()));
      admin.server.closeAllConnections();
    },
  };
}

function tripKey(payload: unknown): string | undefined {
  const t = payload as { service?: unknown; version?: unknown; rolloutHash?: unknown } | null;
  if (!t || typeof t.service !== 'string' || typeof t.version !== 'string' || typeof t.rolloutHash !== 'string') return undefined;
  return canaryKeyText({ service: t.service, version: t.version, rolloutHash: t.rolloutHash });
}

/** One coverage report for the controller: the evaluators (the same in every worker) and the probes all workers answered. */
function sumProbesSeen(reports: (CoverageReport | null | undefined)[]): CoverageReport | null {
  const present = reports.filter((r): r is CoverageReport => r !== null && r !== undefined);
  if (present.length === 0) return null;
  const seen: Record<string, number> = {};
  for (const r of present) for (const [service, n] of Object.entries(r.probes.seen)) seen[service] = (seen[service] ?? 0) + n;
  return { ...present[0]!, probes: { ...present[0]!.probes, seen } };
}
