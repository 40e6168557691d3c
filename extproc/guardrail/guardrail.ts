import { hashFor, type ServiceRouting } from '../routing/state.js';
import { limitFor, type GuardrailSignal } from './thresholds.js';
import { breached, OutcomeWindow } from './window.js';

/** One canary revision: the windows and trips are kept per (service, version, rollout hash). */
export interface CanaryKey {
  service: string;
  version: string;
  rolloutHash: string;
}

/** A canary the guardrail took off, with the evidence. */
export interface Trip extends CanaryKey {
  signal: GuardrailSignal;
  /** Bad outcomes and outcomes in the window when it tripped. */
  bad: number;
  n: number;
  limit: number;
  /** Epoch ms. */
  at: number;
  /** The extproc replica that saw it (its instance id). */
  origin: string;
}

export interface GuardrailDeps {
  /** The service's current routing state (by service name). */
  lookup: (service: string) => ServiceRouting | undefined;
  /** Every service's routing state and a counter that moves when it changes. */
  snapshot: () => ServiceRouting[];
  generation: () => number;
  /** This replica's id, recorded on its trips. */
  instance: string;
  onTrip: (trip: Trip, origin: 'local' | 'peer') => void;
  onClear: (trip: Trip) => void;
  clock?: () => number;
}

export function canaryKeyText(k: CanaryKey): string {
  return `${k.service}/${k.version}/${k.rolloutHash}`;
}

/**
 * The data-plane guardrail: a sliding window per canary and signal; past the policy's hard
 * limit the canary is tripped, and from then on this replica routes its users to stable
 * (decideVersion's `guardrail` reason). A trip lasts while the routing state still names
 * that canary revision: once the controller retires or promotes it, or a new revision
 * replaces it, the trip and its windows are forgotten, so a retry starts clean.
 */
export class Guardrail {
  private readonly windows = new Map<string, OutcomeWindow>();
  private readonly trips = new Map<string, Trip>();
  private seenGeneration = -1;
  private readonly clock: () => number;

  constructor(private readonly deps: GuardrailDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  /** Records one outcome of a canary's user request or evaluated answer; returns the trip it caused. */
  observe(signal: GuardrailSignal, key: CanaryKey, bad: boolean): Trip | undefined {
    this.forgetRetired();
    const state = this.deps.lookup(key.service);
    const thresholds = state?.guardrail;
    const limit = thresholds && limitFor(thresholds, signal);
    if (!state || !thresholds || limit === undefined || !isCanary(state, key)) return undefined;
    const id = canaryKeyText(key);
    if (this.trips.has(id)) return undefined;
    const windowId = `${id}#${signal}`;
    let window = this.windows.get(windowId);
    if (!window || window.size !== thresholds.window) this.windows.set(windowId, (window = new OutcomeWindow(thresholds.window)));
    const now = this.clock();
    window.add(bad, now);
    if (!bad) return undefined;
    const counts = window.counts(now, thresholds.maxAgeSeconds * 1000);
    if (!breached(counts, limit, thresholds.minSamples)) return undefined;
    const trip: Trip = { ...key, signal, bad: counts.bad, n: counts.n, limit, at: now, origin: this.deps.instance };
    this.record(trip, 'local');
    return trip;
  }

  /** A trip another replica published; ignored unless that canary revision is still the canary here. */
  applyPeerTrip(trip: Trip): boolean {
    this.forgetRetired();
    const state = this.deps.lookup(trip.service);
    if (!state || !isCanary(state, trip) || this.trips.has(canaryKeyText(trip))) return false;
    this.record(trip, 'peer');
    return true;
  }

  /** Whether this service's canary (as the routing state names it now) is tripped. */
  canaryTripped(state: ServiceRouting | undefined): boolean {
    if (!state?.canary || this.trips.size === 0) return false;
    this.forgetRetired();
    return this.trips.has(canaryKeyText({ service: state.service, version: state.canary, rolloutHash: hashFor(state, state.canary) }));
  }

  list(): Trip[] {
    return [...this.trips.values()];
  }

  /** Drops trips and windows of canaries the routing state no longer names (retired, promoted, replaced). */
  forgetRetired(): void {
    const generation = this.deps.generation();
    if (generation === this.seenGeneration) return;
    this.seenGeneration = generation;
    const live = new Set(
      this.deps
        .snapshot()
        .filter((s) => s.canary !== undefined)
        .map((s) => canaryKeyText({ service: s.service, version: s.canary!, rolloutHash: hashFor(s, s.canary!) })),
    );
    for (const [id, trip] of this.trips) {
      if (live.has(id)) continue;
      this.trips.delete(id);
      this.deps.onClear(trip);
    }
    for (const id of this.windows.keys()) if (!live.has(id.slice(0, id.lastIndexOf('#')))) this.windows.delete(id);
  }

  private record(trip: Trip, origin: 'local' | 'peer'): void {
    const id = canaryKeyText(trip);
    this.trips.set(id, trip);
    this.windows.delete(`${id}#errors`);
    this.windows.delete(`${id}#hallucinations`);
    this.deps.onTrip(trip, origin);
  }
}

function isCanary(state: ServiceRouting, key: CanaryKey): boolean {
  return state.canary === key.version && hashFor(state, key.version) === key.rolloutHash;
}
