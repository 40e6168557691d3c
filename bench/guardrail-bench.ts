/**
 * make bench-guardrail: how fast the data plane takes a failing canary off, and how fast the
 * kill switch does, through a real Envoy and extproc under a steady 200 requests/s.
 *
 * Guardrail trial: a fresh canary revision (weight 50, the default policy's guardrail) serves
 * until its window is full of healthy answers; then its sim starts failing every request (the
 * breach onset, when the knob was sent to the sim). trip = onset → the send time of the last
 * request that still reached the canary (every later one went to stable). A second extproc
 * replica on the same Redis measures how long the trip takes to reach a peer.
 * Kill-switch trial: the flag file's kill switch is turned on; same measure from the write.
 * Writes bench/results/guardrail.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { DEFAULT_GUARDRAIL } from '../controller/policy/default-policy.js';
import type { Trip } from '../extproc/guardrail/guardrail.js';
import type { GuardrailThresholds } from '../extproc/guardrail/thresholds.js';
import { startProcess, waitForHttp, type ManagedProcess } from '../local/child-process.js';
import { freePort } from '../local/ports.js';
import { startRedis } from '../local/redis.js';
import { TrafficGenerator, type TrafficAnswer } from '../local/traffic.js';
import { CLI, DataPlane, type ServiceSpec } from '../test/harness/dataplane.js';

const RATE = Number(process.env.BENCH_RATE ?? 200);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 20);
/** Traffic kept after a trip or switch, to confirm nobody reaches the canary any more. */
const CONFIRM_MS = 1000;
const { maxAge: _maxAge, checkInterval: _check, ...limits } = DEFAULT_GUARDRAIL;
const GUARDRAIL: GuardrailThresholds = { ...limits, maxAgeSeconds: 60 };
const flagFile = (killed: boolean) =>
  JSON.stringify({ flags: { 'inference-kill-switch': { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: killed ? 'on' : 'off' } } });

async function main(): Promise<void> {
  const redis = await startRedis({});
  const spec = (revision: string): ServiceSpec => ({ name: 'bench', stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: 'stable', v2: revision }, guardrail: GUARDRAIL });
  const dp = await new DataPlane({ extprocConfig: { guardrail: { redisUrl: redis.url } }, knobs: { 'bench/v1': { latency: { kind: 'fixed', ms: 2 } }, 'bench/v2': { latency: { kind: 'fixed', ms: 2 } } } }).start([spec('rev-0')], flagFile(false));
  const peer = await startPeer(dp, redis.url);
  const traffic = new TrafficGenerator({
    port: dp.listenPort,
    host: 'bench',
    rps: RATE,
    users: Array.from({ length: 1000 }, (_, i) => ({ id: `user-${i}` })),
    request: (i) => ({ kind: 'chat', body: { model: 'bench', messages: [{ role: 'user', content: `question ${i}` }] } }),
  });
  const canarySim = `${dp.sims.get('bench/v2')!.url}/admin/knobs`;
  // The onset is when the knob is sent: the sim may fail requests before its acknowledgement arrives.
  const setErrorRate = async (errorRate: number): Promise<number> => {
    const sent = Date.now();
    const res = await fetch(canarySim, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errorRate }) });
    if (!res.ok) throw new Error(`PATCH ${canarySim}: HTTP ${res.status}`);
    return sent;
  };
  traffic.start();
  const trips: number[] = [];
  const peers: number[] = [];
  const kills: number[] = [];
  try {
    for (let i = 1; i <= TRIALS; i++) {
      // A new revision of the canary: a fresh window, no trip carried over.
      const revision = `rev-${i}`;
      dp.writeRouting([spec(revision)]);
      await dp.waitForState((s) => s.services[0]?.rolloutHashes.v2 === revision);
      await untilAnswers(traffic, Date.now(), (a) => a.servedBy === 'v2' && a.status === 200, GUARDRAIL.window + 10);
      const onset = await setErrorRate(1);
      const peerSeen = waitForPeerTrip(peer.adminPort, revision).then((at) => at - onset);
      await dp.waitForState((s) => (s as unknown as { guardrail: { trips: Trip[] } }).guardrail.trips.some((t) => t.rolloutHash === revision), 10_000);
      const trip = await lastCanarySend(traffic, onset);
      trips.push(trip);
      peers.push(await peerSeen);
      log(`trial ${i}: guardrail trip ${trip} ms, peer replica ${peers.at(-1)} ms`);
      await setErrorRate(0);
    }
    for (let i = 1; i <= TRIALS; i++) {
      // A healthy revision serving its share again, then the kill switch.
      const revision = `ks-${i}`;
      dp.writeRouting([spec(revision)]);
      await dp.waitForState((s) => s.services[0]?.rolloutHashes.v2 === revision);
      await untilAnswers(traffic, Date.now(), (a) => a.servedBy === 'v2', 20);
      const switched = Date.now();
      writeFileSync(dp.flagsFile, flagFile(true));
      kills.push(await lastCanarySend(traffic, switched));
      log(`trial ${i}: kill switch ${kills.at(-1)} ms`);
      writeFileSync(dp.flagsFile, flagFile(false));
    }
  } finally {
    await traffic.stop();
    await peer.process.stop();
    await dp.stop();
    await redis.stop();
  }
  const result = {
    rate_rps: RATE,
    trials: TRIALS,
    canary_weight: 50,
    guardrail: GUARDRAIL,
    trip_p50_ms: percentile(trips, 50),
    trip_p99_ms: percentile(trips, 99),
    trip_max_ms: Math.max(...trips),
    peer_replica_p50_ms: percentile(peers, 50),
    peer_replica_p99_ms: percentile(peers, 99),
    kill_switch_p50_ms: percentile(kills, 50),
    kill_switch_p99_ms: percentile(kills, 99),
    failed_requests_excluding_canary_faults: traffic.answers.filter((a) => (a.status === 0 || a.status >= 500) && a.servedBy !== 'v2').length,
    requests: traffic.answers.length,
    trips_ms: trips,
    peer_replica_ms: peers,
    kill_switch_ms: kills,
    method:
      'trip: sim fault knob sent -> send time of the last request still served by the canary (every later request was served by stable for at least 1 s). peer: fault -> the second extproc replica (Redis pub/sub, no traffic of its own) lists the trip on /debug/state (polled every 5 ms). kill switch: flag file written -> last canary send. p50/p99 by nearest rank (with 20 trials p99 is the slowest trial).',
  };
  const out = resolve(import.meta.dirname, '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'guardrail.json'), `${JSON.stringify(result, null, 2)}\n`);
  log(`trip p50 ${result.trip_p50_ms} ms p99 ${result.trip_p99_ms} ms; peer p50 ${result.peer_replica_p50_ms} ms p99 ${result.peer_replica_p99_ms} ms; kill switch p50 ${result.kill_switch_p50_ms} ms p99 ${result.kill_switch_p99_ms} ms -> bench/results/guardrail.json`);
}

/** A second extproc on the same routing file, flags and Redis, with no traffic: it only learns trips from peers. */
async function startPeer(dp: DataPlane, redisUrl: string): Promise<{ process: ManagedProcess; adminPort: number }> {
  const configFile = join(dp.dir, 'extproc-peer.yaml');
  writeFileSync(configFile, toYaml({ guardrail: { redisUrl } }));
  const adminPort = await freePort();
  const args = [CLI, 'extproc', '--routing-file', dp.routingFile, '--flags-file', dp.flagsFile, '--port', String(await freePort()), '--admin-port', String(adminPort), '--config', configFile];
  const proc = startProcess('extproc-peer', process.execPath, args, join(dp.dir, 'extproc-peer.log'), { ...process.env, FLEDGE_LOG_LEVEL: 'warn' });
  await waitForHttp(proc, `http://127.0.0.1:${adminPort}/readyz`);
  return { process: proc, adminPort };
}

async function waitForPeerTrip(adminPort: number, revision: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/state`)).json()) as { guardrail: { trips: Trip[] } };
    if (state.guardrail.trips.some((t) => t.rolloutHash === revision)) return Date.now();
    if (Date.now() > deadline) throw new Error(`the peer replica did not get the trip of ${revision} in 10 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until `count` answers sent after `since` match. */
async function untilAnswers(traffic: TrafficGenerator, since: number, match: (a: TrafficAnswer) => boolean, count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (traffic.answers.filter((a) => a.sentAt >= since && match(a)).length < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} matching answers in 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * After `from`, keeps traffic flowing until no request reached the canary for CONFIRM_MS
 * (and every one sent in that time was answered); returns the last canary send time - from.
 */
async function lastCanarySend(traffic: TrafficGenerator, from: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const after = traffic.answers.filter((a) => a.sentAt >= from);
    const last = Math.max(from, ...after.filter((a) => a.servedBy === 'v2').map((a) => a.sentAt));
    const answeredSince = after.filter((a) => a.sentAt > last + 10).length;
    if (Date.now() - last > CONFIRM_MS + 200 && answeredSince >= (RATE * CONFIRM_MS) / 1000 - 10) return last - from;
    if (Date.now() > deadline) throw new Error('the canary kept getting requests for 20 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function log(message: string): void {
  process.stderr.write(`[bench-guardrail] ${message}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-guardrail failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
