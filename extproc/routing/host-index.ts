import type { ServiceRouting } from './state.js';

/** Maps request hosts to services: the service name itself plus any declared aliases. */
export class HostIndex {
  private byHost = new Map<string, ServiceRouting>();
  private all: ServiceRouting[] = [];

  replace(entries: { routing: ServiceRouting; hosts: string[] }[]): void {
    const next = new Map<string, ServiceRouting>();
    for (const { routing, hosts } of entries) {
      next.set(routing.service.toLowerCase(), routing);
      for (const h of hosts) next.set(h.toLowerCase(), routing);
    }
    this.byHost = next;
    this.all = entries.map((e) => e.routing);
  }

  lookup(host: string): ServiceRouting | undefined {
    return this.byHost.get(host);
  }

  snapshot(): ServiceRouting[] {
    return this.all;
  }
}
