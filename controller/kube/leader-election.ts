/**
 * Leader election on a coordination.k8s.io/v1 Lease, the protocol client-go uses:
 * - the holder renews `renewTime` every retryPeriod; an update carries the resourceVersion
 *   it read, so of two candidates racing for an expired Lease exactly one wins (409 for the other);
 * - others take the Lease over only when `renewTime + leaseDurationSeconds` has passed;
 * - a leader that could not renew within renewDeadline stops leading by itself, before the
 *   Lease expires for the others (renewDeadline < leaseDuration), so two never act at once.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { apiErrorText, isConflict, isNotFound } from './api-errors.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  logger: Logger;
  clock?: () => number;
}

export class LeaseElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: () => number;
  private leading = false;
  private lastRenewed = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly o: LeaderElectionOptions) {
    this.api = o.kubeConfig.makeApiClient(CoordinationV1Api);
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    this.clock = o.clock ?? Date.now;
    if (!(this.retryPeriodMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseDurationMs)) {
      throw new Error(`leader election needs retryPeriod < renewDeadline < leaseDuration (got ${this.retryPeriodMs}, ${this.renewDeadlineMs}, ${this.leaseDurationMs} ms)`);
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop();
  }

  /** Stops campaigning; a leader gives the Lease up so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.tick;
    if (this.leading) {
      await this.release();
      await this.setLeading(false);
    }
  }

  private loop(): void {
    if (this.stopped) return;
    this.tick = this.tryAcquireOrRenew().finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.loop(), this.retryPeriodMs);
    });
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = this.clock();
    try {
      const acquired = await this.acquireOrRenew(now);
      if (acquired) {
        this.lastRenewed = now;
        if (!this.leading) await this.setLeading(true);
        return;
      }
    } catch (err) {
      this.o.logger.warn({ lease: this.leaseRef(), err: apiErrorText(err) }, 'leader election: Lease request failed');
    }
    // Not renewed this round: a leader keeps leading only until its renew deadline.
    if (this.leading && this.clock() - this.lastRenewed >= this.renewDeadlineMs) {
      this.o.logger.error({ lease: this.leaseRef(), renewDeadlineMs: this.renewDeadlineMs }, 'leader election: could not renew the Lease in time; stopping leading');
      await this.setLeading(false);
    } else if (this.leading) {
      // Another holder took over (e.g. our renewals were too slow): stop at once.
      await this.checkStillHolder();
    }
  }

  /** True when we hold the Lease after this call. */
  private async acquireOrRenew(now: number): Promise<boolean> {
    const { namespace, name, identity } = this.o;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: this.spec(now, now, 0) } });
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false; // another candidate created it first
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewedAt = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000;
    const ours = holder === identity;
    if (!ours && holder && renewedAt + durationMs > now) return false;
    const acquiredAt = ours && spec.acquireTime ? new Date(spec.acquireTime).getTime() : now;
    const transitions = (spec.leaseTransitions ?? 0) + (ours ? 0 : 1);
    try {
      await this.api.replaceNamespacedLease({ namespace, name, body: { ...lease, spec: this.spec(acquiredAt, now, transitions) } });
      if (!ours) this.o.logger.info({ lease: this.leaseRef(), previousHolder: holder ?? null }, 'leader election: acquired the Lease');
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote it in between
      throw err;
    }
  }

  private async checkStillHolder(): Promise<void> {
    try {
      const lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
      if (lease.spec?.holderIdentity !== this.o.identity) await this.setLeading(false);
    } catch {
      // unknown: the renew deadline decides
    }
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      // An expired renewTime lets the next candidate acquire on its next try.
      await this.api.replaceNamespacedLease({ namespace: this.o.namespace, name: this.o.name, body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, renewTime: microTime(0), leaseDurationSeconds: 1 } } });
    } catch (err) {
      this.o.logger.warn({ lease: this.leaseRef(), err: apiErrorText(err) }, 'leader election: releasing the Lease failed; it expires by itself');
    }
  }

  private spec(acquiredAt: number, renewedAt: number, transitions: number): V1Lease['spec'] {
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      acquireTime: microTime(acquiredAt),
      renewTime: microTime(renewedAt),
      leaseTransitions: transitions,
    };
  }

  private async setLeading(leading: boolean): Promise<void> {
    if (this.leading === leading) return;
    this.leading = leading;
    this.o.logger.info({ lease: this.leaseRef(), identity: this.o.identity, leading }, leading ? 'leader election: started leading' : 'leader election: stopped leading');
    try {
      await (leading ? this.o.onStartedLeading() : this.o.onStoppedLeading());
    } catch (err) {
      this.o.logger.error({ err: (err as Error).message }, `leader election: ${leading ? 'start' : 'stop'} callback failed`);
    }
  }

  private leaseRef(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }
}

/** Lease times are MicroTime (six fractional digits), which the API server insists on. */
function microTime(ms: number): V1MicroTime {
  return new V1MicroTime(ms);
}
