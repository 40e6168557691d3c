// The guardrail's Redis parts against a real redis-server: trips shared between replicas
// (pub/sub for running ones, the stored hash for one that starts later, removal once the
// canary is retired) and the LLM judge's verdicts (its scores stream) feeding the window.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { Guardrail, type Trip } from '../../extproc/guardrail/guardrail.js';
import { JudgeVerdictReader } from '../../extproc/guardrail/judge-verdicts.js';
import { GuardrailPeerSync } from '../../extproc/guardrail/peer-sync.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';

const logger = createLogger('test', 'silent');
const CHANNEL = 'fledge:guardrail:test';
const routing: ServiceRouting = {
  service: 'chat',
  stable: 'v1',
  canary: 'v2',
  canaryWeight: 20,
  killed: false,
  rolloutHashes: { v1: 'h1', v2: 'h2' },
  guardrail: { errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAgeSeconds: 60 },
};
const canary = { service: 'chat', version: 'v2', rolloutHash: 'h2' };

/** One extproc replica's guardrail with its Redis parts, over a routing state the test moves. */
function replica(url: string, name: string) {
  let state: ServiceRouting = routing;
  let generation = 1;
  const trips: { trip: Trip; origin: string }[] = [];
  let peers: GuardrailPeerSync | undefined;
  const guardrail = new Guardrail({
    lookup: (s) => (s === state.service ? state : undefined),
    snapshot: () => [state],
    generation: () => generation,
    instance: name,
    onTrip: (trip, origin) => {
      trips.push({ trip, origin });
      if (origin === 'local') peers!.publish(trip);
    },
    onClear: (trip) => peers!.cleared(trip),
  });
  peers = new GuardrailPeerSync(url, CHANNEL, (trip) => guardrail.applyPeerTrip(trip), logger);
  const judge = new JudgeVerdictReader(url, 'fledge:judge:scores', (key, bad) => void guardrail.observe('hallucinations', key, bad), logger);
  return {
    guardrail,
    trips,
    peers,
    judge,
    retire() {
      state = { ...routing, canary: undefined, canaryWeight: 0 };
      generation += 1;
      guardrail.forgetRetired();
    },
    async close() {
      await judge.close();
      await peers!.close();
    },
  };
}

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('guardrail over a real Redis', () => {
  let redis: RunningRedis;
  let client: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it("shares a trip with a running replica and with one that starts later; retiring the canary removes it from Redis", async () => {
    const a = replica(redis.url, 'a');
    const b = replica(redis.url, 'b');
    await Promise.all([a.peers.start(), b.peers.start()]);
    for (let i = 0; i < 50; i++) a.guardrail.observe('errors', canary, i >= 44);
    expect(a.trips.map((t) => t.origin)).toEqual(['local']);
    await until('b applies the published trip', () => b.trips.length === 1);
    expect(b.trips[0]).toEqual({ trip: a.trips[0]!.trip, origin: 'peer' });
    expect(b.guardrail.canaryTripped(routing)).toBe(true);

    // A replica started after the trip reads it from the stored hash.
    const late = replica(redis.url, 'late');
    await late.peers.start();
    await until('the late replica catches up', () => late.trips.length === 1);
    expect(late.trips[0]!.origin).toBe('peer');

    a.retire();
    await until('the trip leaves the Redis hash', async () => Object.keys(await client.hgetall(`${CHANNEL}:trips`)).length === 0);
    await Promise.all([a.close(), b.close(), late.close()]);
  });

  it("trips on the LLM judge's verdicts from its scores stream", async () => {
    const r = replica(redis.url, 'judged');
    await r.judge.start();
    for (let i = 0; i < 50; i++) {
      await client.xadd('fledge:judge:scores', '*', 'service', 'chat', 'version', 'v2', 'rollout_hash', 'h2', 'score', '0.2', 'hallucination', String(i >= 39), 'reason', 'test', 'judged_at', String(Date.now()));
    }
    // 11 of 50 hallucinated is 22% > 20%: the 50th verdict trips it.
    await until('the judge verdicts trip the canary', () => r.trips.length === 1);
    expect(r.trips[0]!.trip).toMatchObject({ signal: 'hallucinations', bad: 11, n: 50, limit: 0.2 });
    await r.close();
  });
});
