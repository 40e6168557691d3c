import { portInUse } from '../../local/ports.js';

export const STACK_PORT_KEYS = ['envoy', 'envoyAdmin', 'extproc', 'extprocAdmin', 'controllerAdmin', 'prometheus', 'redis', 'prober'] as const;

/**
 * Ports are drawn below Linux's ephemeral range (32768–60999 by default): the OS hands those
 * out to outgoing connections too, so on a busy machine a port found free there can be taken
 * by some client's connection before the stack binds it. Below it only listeners compete.
 */
const LOW = 20_000;
const HIGH = 32_000;

async function quietRun(count: number, taken: ReadonlySet<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = LOW + Math.floor(Math.random() * (HIGH - LOW - count));
    let free = true;
    for (let p = first; p < first + count && free; p++) free = !taken.has(p) && !(await portInUse(p));
    if (free) return first;
  }
  throw new Error(`no run of ${count} free ports found in ${LOW}..${HIGH}`);
}

/**
 * Free ports for a local stack: `models` consecutive ones for the model servers (they take
 * consecutive ports), and one each for the other components, none inside that run.
 */
export async function freeStackPorts(models: number): Promise<Record<(typeof STACK_PORT_KEYS)[number] | 'models', number>> {
  const taken = new Set<number>();
  const first = await quietRun(models, taken);
  for (let i = 0; i < models; i++) taken.add(first + i);
  const ports: Record<string, number> = { models: first };
  for (const key of STACK_PORT_KEYS) {
    const port = await quietRun(1, taken);
    taken.add(port);
    ports[key] = port;
  }
  return ports as Record<(typeof STACK_PORT_KEYS)[number] | 'models', number>;
}
