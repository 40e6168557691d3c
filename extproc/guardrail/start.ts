import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import type { ExtprocConfig } from '../config.js';
import type { ExtprocMetrics } from '../metrics.js';
import type { RoutingStateSource } from '../routing/state.js';
import { Guardrail, type CanaryKey, type Trip } from './guardrail.js';
import { JudgeVerdictReader } from './judge-verdicts.js';
import type { WorkerLink } from '../workers/worker-link.js';
import { GuardrailPeerSync, tripSchema } from './peer-sync.js';
import type { GuardrailSignal } from './thresholds.js';

export interface RunningGuardrail {
  guardrail: Guardrail;
  /** Records an outcome; a trip it causes is logged, exported and shared with the peers. */
  observe(signal: GuardrailSignal, key: CanaryKey, bad: boolean): void;
  close(): Promise<void>;
}

/**
 * The guardrail with its metrics, logs and (with a Redis URL) its peer sharing. As one of
 * `--workers N`, a trip is also told to the sibling workers at once (through the primary),
 * Redis or not: one process's users must not keep reaching a canary another one took off.
 */
export async function startGuardrail(config: ExtprocConfig['guardrail'], routing: RoutingStateSource, metrics: ExtprocMetrics, logger: Logger, siblings?: WorkerLink): Promise<RunningGuardrail> {
  const log = logger.child({ part: 'guardrail' });
  let peers: GuardrailPeerSync | undefined;
  let judge: JudgeVerdictReader | undefined;
  const labels = (t: Trip) => ({ service: t.service, version: t.version, rollout_hash: t.rolloutHash, signal: t.signal });
  const guardrail = new Guardrail({
    lookup: (service) => routing.lookup(service.toLowerCase()),
    snapshot: () => routing.snapshot(),
    generation: () => routing.generation,
    instance: randomUUID(),
    onTrip: (trip, origin) => {
      metrics.guardrailTripped.set(labels(trip), 1);
      metrics.guardrailTrips.inc({ service: trip.service, version: trip.version, signal: trip.signal, origin });
      log.warn({ ...trip, origin }, `guardrail tripped: ${trip.service}/${trip.version} ${trip.signal} ${trip.bad}/${trip.n} above ${trip.limit}; its users go to stable`);
      if (origin === 'local') {
        peers?.publish(trip);
        siblings?.tell({ kind: 'guardrail-trip', payload: trip });
      }
    },
    onClear: (trip) => {
      metrics.guardrailTripped.remove(labels(trip));
      log.info({ service: trip.service, version: trip.version, rolloutHash: trip.rolloutHash }, 'guardrail trip cleared: the routing state no longer names that canary');
      peers?.cleared(trip);
      siblings?.tell({ kind: 'guardrail-cleared', payload: trip });
    },
  });
  siblings?.on('guardrail-trip', (payload) => {
    const trip = tripSchema.safeParse(payload);
    if (trip.success) guardrail.applyPeerTrip(trip.data);
    else log.warn({ problems: trip.error.issues.map((i) => i.message) }, 'a sibling worker sent a trip this worker cannot read; ignored');
  });
  if (config.redisUrl) {
    peers = new GuardrailPeerSync(config.redisUrl, config.channel, (trip) => guardrail.applyPeerTrip(trip), log);
    // Subscribing waits for Redis; extproc serves meanwhile (each replica still trips on its own).
    peers.start().catch((err: Error) => log.warn({ err: err.message }, 'guardrail peer sync: cannot subscribe yet; retrying in the background'));
    judge = new JudgeVerdictReader(config.redisUrl, config.judgeScoresStream, (key, hallucinated) => void guardrail.observe('hallucinations', key, hallucinated), log);
    void judge.start();
  }
  // Trips of canaries the routing state retired are cleared even when no request arrives.
  const sweep = setInterval(() => guardrail.forgetRetired(), 1000);
  sweep.unref();
  return {
    guardrail,
    observe: (signal, key, bad) => void guardrail.observe(signal, key, bad),
    async close() {
      clearInterval(sweep);
      await judge?.close();
      await peers?.close();
    },
  };
}
