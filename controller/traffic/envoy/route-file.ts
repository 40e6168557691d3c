import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { clusterName, ROUTE_CONFIG_NAME, routeConfig, type LocalService } from './routes.js';

/**
 * Drives a local Envoy's routes through file-based RDS: each change is written as a new
 * DiscoveryResponse (atomically, by rename, so Envoy never reads half a file), and
 * `waitApplied` checks Envoy's admin API until Envoy reports that version in force.
 */
export class EnvoyRouteFile {
  private version = 0;

  constructor(
    readonly file: string,
    private readonly adminUrl: string,
  ) {}

  /**
   * Writes the routes for `services`; returns the version Envoy will report once applied.
   * Routes equal to those on file are not written again: Envoy ignores an update whose
   * content is unchanged and would keep reporting the old version.
   */
  write(services: LocalService[]): string {
    const resources = [{ '@type': 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration', ...routeConfig(services) }];
    const current = this.onFile();
    if (current && JSON.stringify(current.resources) === JSON.stringify(resources)) return current.version_info;
    const version = `${Date.now()}-${++this.version}`;
    const response = { version_info: version, resources };
    const temp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(response));
    renameSync(temp, this.file);
    return version;
  }

  private onFile(): { version_info: string; resources: unknown } | undefined {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as { version_info: string; resources: unknown };
    } catch {
      return undefined;
    }
  }

  /** The route-config version Envoy has in force, from its admin config dump. */
  async appliedVersion(): Promise<string | undefined> {
    const res = await fetch(`${this.adminUrl}/config_dump?resource=dynamic_route_configs`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`Envoy admin config_dump answered HTTP ${res.status}`);
    const dump = (await res.json()) as { configs?: { version_info?: string; route_config?: { name?: string } }[] };
    return dump.configs?.find((c) => c.route_config?.name === ROUTE_CONFIG_NAME)?.version_info;
  }

  /** The weight Envoy's weighted route for `service` gives `version` right now (0 when absent). */
  async canaryWeightInForce(service: string, version: string): Promise<number | undefined> {
    const res = await fetch(`${this.adminUrl}/config_dump?resource=dynamic_route_configs`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`Envoy admin config_dump answered HTTP ${res.status}`);
    type Route = { name?: string; route?: { weighted_clusters?: { clusters?: { name: string; weight?: number }[] } } };
    const dump = (await res.json()) as { configs?: { route_config?: { name?: string; virtual_hosts?: { name: string; routes?: Route[] }[] } }[] };
    const config = dump.configs?.find((c) => c.route_config?.name === ROUTE_CONFIG_NAME)?.route_config;
    const weighted = config?.virtual_hosts?.find((h) => h.name === service)?.routes?.find((r) => r.name === `${service}-weighted`);
    if (!weighted) return undefined;
    return weighted.route?.weighted_clusters?.clusters?.find((c) => c.name === clusterName(service, version))?.weight ?? 0;
  }

  /** Resolves once Envoy runs `version`; rejects, naming the file, if it has not after `timeoutMs`. */
  async waitApplied(version: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen: string | undefined;
    while (Date.now() < deadline) {
      seen = await this.appliedVersion();
      if (seen === version) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`Envoy did not apply routes version ${version} from ${this.file} within ${timeoutMs} ms (in force: ${seen ?? 'none'}); see Envoy's log`);
  }

  /** Writes and waits: the change is in Envoy when this resolves. */
  async apply(services: LocalService[], timeoutMs?: number): Promise<string> {
    const version = this.write(services);
    await this.waitApplied(version, timeoutMs);
    return version;
  }
}
