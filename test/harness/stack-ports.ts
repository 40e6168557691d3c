import { freePort, freePortRun } from '../../local/ports.js';

export const STACK_PORT_KEYS = ['envoy', 'envoyAdmin', 'extproc', 'extprocAdmin', 'controllerAdmin', 'prometheus', 'redis', 'prober'] as const;

/**
 * Free ports for a local stack: `models` consecutive ones for the model servers (they take
 * consecutive ports), and one each for the other components, none inside that run.
 */
export async function freeStackPorts(models: number): Promise<Record<(typeof STACK_PORT_KEYS)[number] | 'models', number>> {
  const first = await freePortRun(models);
  const taken = new Set(Array.from({ length: models }, (_, i) => first + i));
  const ports: Record<string, number> = { models: first };
  for (const key of STACK_PORT_KEYS) {
    let port = await freePort();
    while (taken.has(port)) port = await freePort();
    taken.add(port);
    ports[key] = port;
  }
  return ports as Record<(typeof STACK_PORT_KEYS)[number] | 'models', number>;
}
