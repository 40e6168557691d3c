import { writeAtomically, readTrafficState, renderEnvoyServices, renderRoutingFile, writeTrafficState, type ServiceTraffic } from './traffic-state.js';
import type { EnvoyRouteFile } from '../traffic/envoy/route-file.js';
import { servingVersions } from '../traffic/envoy/routes.js';
import type { GuardrailThresholds } from '../../extproc/guardrail/thresholds.js';
import type { TrafficRouter } from '../traffic/router.js';

export interface LocalTrafficFiles {
  /** The traffic state (JSON) both renders come from. */
  trafficFile: string;
  /** extproc's routing-state file. */
  routingFile: string;
  envoyRoutes: EnvoyRouteFile;
  /** extproc's admin URL, to confirm it routes by the new state; omitted = not checked. */
  extprocAdminUrl?: string;
}

/**
 * Local mode's traffic router for one rollout: changes the candidate's weight or mirror
 * share in the traffic state, renders extproc's routing file and Envoy's routes from it,
 * and returns only once Envoy (admin config dump) and extproc (/debug/state) run it.
 * Changes to one traffic file are made one at a time (all rollouts of a stack share it).
 */
export class LocalTrafficRouter implements TrafficRouter {
  readonly description: string;

  constructor(
    private readonly files: LocalTrafficFiles,
    private readonly service: string,
    private readonly candidate: string,
    /** The policy's guardrail limits, handed to extproc with the canary; absent = no guardrail. */
    private readonly guardrail?: GuardrailThresholds,
  ) {
    this.description = `local Envoy routes for ${service} (candidate ${candidate})`;
  }

  setWeight(weight: number): Promise<void> {
    return this.update((s) => {
      s.canary = this.candidate;
      s.canaryWeight = weight;
      this.armGuardrail(s);
    });
  }

  setMirror(percent: number): Promise<void> {
    return this.update((s) => {
      s.canary = this.candidate;
      s.mirrorPercent = percent;
      this.armGuardrail(s);
    });
  }

  /** The candidate must not serve: not the canary any more (so no header route, no flag reaches it), weight 0, no mirror. */
  retireCandidate(): Promise<void> {
    return this.update((s) => {
      if (s.canary === this.candidate) delete s.canary;
      delete s.guardrail;
      s.canaryWeight = 0;
      s.mirrorPercent = 0;
    });
  }

  /** The candidate becomes the stable version; nothing is rolling out afterwards. */
  promoteCandidate(): Promise<void> {
    return this.update((s) => {
      s.stable = this.candidate;
      delete s.canary;
      delete s.guardrail;
      s.canaryWeight = 0;
      s.mirrorPercent = 0;
    });
  }

  /** The canary's guardrail limits travel with it into extproc's routing file. */
  private armGuardrail(s: ServiceTraffic): void {
    if (this.guardrail) s.guardrail = this.guardrail;
    else delete s.guardrail;
  }

  /** Reads the weight back from Envoy itself, not from our own files. */
  async verifyWeight(weight: number): Promise<boolean> {
    return (await this.files.envoyRoutes.canaryWeightInForce(this.service, this.candidate)) === weight;
  }

  private update(mutate: (s: ServiceTraffic) => void): Promise<void> {
    return serialized(this.files.trafficFile, () => this.updateNow(mutate));
  }

  private async updateNow(mutate: (s: ServiceTraffic) => void): Promise<void> {
    const state = readTrafficState(this.files.trafficFile);
    const service = state.services[this.service];
    if (!service) throw new Error(`${this.description}: service ${this.service} is not in ${this.files.trafficFile}`);
    if (!(this.candidate in service.upstreams)) throw new Error(`${this.description}: no model server runs version ${this.candidate} of ${this.service}`);
    // The versions Envoy has a per-version route for, as rendered from the traffic state.
    const routed = () => servingVersions(renderEnvoyServices(state).find((s) => s.name === this.service)!);
    const routedBefore = routed();
    mutate(service);
    writeTrafficState(this.files.trafficFile, state);
    const toExtproc = async () => {
      writeAtomically(this.files.routingFile, renderRoutingFile(state));
      if (this.files.extprocAdminUrl) await this.waitForExtproc(service);
    };
    const toEnvoy = () => this.files.envoyRoutes.apply(renderEnvoyServices(state));
    // A version's route must exist while extproc may pick it: Envoy gets a new route before
    // extproc may choose it, and loses an old one only after extproc stopped choosing it.
    const routedAfter = routed();
    if (routedBefore.some((v) => !routedAfter.includes(v))) {
      await toExtproc();
      await toEnvoy();
    } else {
      await toEnvoy();
      await toExtproc();
    }
  }

  private async waitForExtproc(expected: ServiceTraffic): Promise<void> {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const res = await fetch(`${this.files.extprocAdminUrl}/debug/state`, { signal: AbortSignal.timeout(1000) });
        const state = (await res.json()) as { services: { service: string; stable: string; canary?: string; canaryWeight: number }[] };
        const s = state.services.find((x) => x.service === this.service);
        if (s && s.stable === expected.stable && s.canary === expected.canary && (!expected.canary || s.canaryWeight === expected.canaryWeight)) return;
      } catch {
        // extproc restarting: Envoy already routes by the new weights; keep checking until the deadline.
      }
      if (Date.now() > deadline) throw new Error(`${this.description}: extproc at ${this.files.extprocAdminUrl} did not pick up ${this.files.routingFile} within 5 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** The tail of the changes queued per traffic file: each waits for Envoy to report its own routes version. */
const queues = new Map<string, Promise<unknown>>();

function serialized<T>(file: string, work: () => Promise<T>): Promise<T> {
  const run = (queues.get(file) ?? Promise.resolve()).then(work);
  const tail = run.catch(() => undefined);
  queues.set(file, tail);
  void tail.then(() => {
    if (queues.get(file) === tail) queues.delete(file);
  });
  return run;
}
