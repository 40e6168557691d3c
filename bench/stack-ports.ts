import { freePort, freePortRun } from '../local/ports.js';

/** Free ports for a local stack in a benchmark: a run of `models` for the models, one each for the rest. */
export async function benchStackPorts(models: number): Promise<Record<string, number>> {
  const first = await freePortRun(models);
  const taken = new Set(Array.from({ length: models }, (_, i) => first + i));
  const out: Record<string, number> = { models: first };
  for (const key of ['envoy', 'envoyAdmin', 'extproc', 'extprocAdmin', 'controllerAdmin', 'prometheus', 'redis', 'prober']) {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    out[key] = p;
  }
  return out;
}
