/** One worker's answer to a question of the primary (to "state": its /debug/state, with a `worker` section), or why none came. */
export interface WorkerState {
  index: number;
  body?: unknown;
  error?: string;
}

interface StateBody {
  services?: unknown;
  routingGeneration?: number;
  flags?: { generation?: number; lastError?: string | null } | null;
  guardrail?: { trips?: unknown[] };
  worker?: { index: number; pid: number; decisions: number };
  [key: string]: unknown;
}

/** What every worker routes by must be the same for a state to be extproc's. */
function routingKey(body: StateBody): string {
  return JSON.stringify([body.services, body.flags?.lastError ?? null]);
}

/**
 * The primary's /debug/state: the state every worker runs, and each worker's summary. A
 * change (a routing file, a VirtualService) reaches the workers one by one; until all run
 * it, the top level stays at the last state they all ran (`inSync: false`), so a caller
 * waiting for "extproc runs X" is not told so while one worker still routes by the old X.
 */
export function agreedState(answers: WorkerState[], expected: number, lastAgreed: Record<string, unknown> | undefined): { state: Record<string, unknown>; agreed: Record<string, unknown> | undefined } {
  const bodies = answers.map((a) => (a.body ?? null) as StateBody | null);
  const answered = bodies.filter((b): b is StateBody => b !== null);
  const keys = new Set(answered.map(routingKey));
  const inSync = answered.length === expected && keys.size === 1;
  const reference = answered[0];
  const agreed = inSync && reference ? withoutWorker(reference) : lastAgreed;
  const workers = answers.map((a, i) => {
    const body = bodies[i];
    if (!body) return { index: a.index, error: a.error ?? 'no state yet' };
    return {
      index: a.index,
      pid: body.worker?.pid,
      decisions: body.worker?.decisions,
      routingGeneration: body.routingGeneration,
      flagsGeneration: body.flags?.generation ?? null,
      guardrailTrips: body.guardrail?.trips?.length ?? 0,
      inSync: agreed !== undefined && routingKey(body) === routingKey(agreed as StateBody),
    };
  });
  const base = agreed ?? (reference ? withoutWorker(reference) : { services: [] });
  return { state: { ...base, inSync, workers }, agreed };
}

function withoutWorker(body: StateBody): Record<string, unknown> {
  const { worker: _worker, ...rest } = body;
  return rest;
}
