import { renameSync, writeFileSync } from 'node:fs';
import { ROUTE_CONFIG_NAME, routeConfig, type LocalService } from './envoy-config.js';

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

  /** Writes the routes for `services`; returns the version Envoy will report once applied. */
  write(services: LocalService[]): string {
    const version = `${Date.now()}-${++this.version}`;
    const response = {
      version_info: version,
      resources: [{ '@type': 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration', ...routeConfig(services) }],
    };
    const temp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(response));
    renameSync(temp, this.file);
    return version;
  }

  /** The route-config version Envoy has in force, from its admin config dump. */
  async appliedVersion(): Promise<string | undefined> {
    const res = await fetch(`${this.adminUrl}/config_dump?resource=dynamic_route_configs`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`Envoy admin config_dump answered HTTP ${res.status}`);
    const dump = (await res.json()) as { configs?: { version_info?: string; route_config?: { name?: string } }[] };
    return dump.configs?.find((c) => c.route_config?.name === ROUTE_CONFIG_NAME)?.version_info;
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
