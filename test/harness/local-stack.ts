/**
 * Helpers for tests on the real local stack: waiting until Prometheus has scraped a target,
 * `fledge controller --local` started as users start it (ready when its admin says so), and
 * waiting for a rollout's status file.
 */
import { readFileSync } from 'node:fs';
import { parseStatus, type RolloutStatus } from '../../controller/kube/rollout-status.js';
import type { LocalStateStore } from '../../controller/local/state-store.js';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { waitUntil } from './rollout-fixture.js';
import { CLI } from './dataplane.js';

/** Prometheus applies its targets on a 5 s tick: wait until one of them answers `up == 1`. */
export async function waitForPrometheusUp(prometheusPort: number, timeoutMs = 20_000): Promise<void> {
  await waitUntil(
    `a Prometheus target up on :${prometheusPort}`,
    async () => {
      const res = await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/query?query=up`);
      const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
      return body.data.result.some((r) => r.value[1] === '1');
    },
    timeoutMs,
  );
}

export interface LocalControllerOptions {
  stateDir: string;
  rolloutsFile: string;
  ports: { prometheus: number; envoyAdmin: number; extprocAdmin: number; controllerAdmin: number };
  timeScale: number;
  logFile: string;
}

/** `fledge controller --local` against the stack's Prometheus, Envoy and extproc admin; resolves once ready. */
export async function startLocalController(o: LocalControllerOptions): Promise<ManagedProcess> {
  const p = o.ports;
  const controller = startProcess(
    'controller',
    process.execPath,
    [CLI, 'controller', '--local', '--state-dir', o.stateDir, '--rollouts', o.rolloutsFile, '--prometheus-url', `http://127.0.0.1:${p.prometheus}`,
      '--envoy-admin-url', `http://127.0.0.1:${p.envoyAdmin}`, '--extproc-admin-url', `http://127.0.0.1:${p.extprocAdmin}`,
      '--time-scale', String(o.timeScale), '--admin-port', String(p.controllerAdmin)],
    o.logFile,
  );
  await waitForHttp(controller, `http://127.0.0.1:${p.controllerAdmin}/readyz`);
  return controller;
}

/** A local rollout's status file, parsed. */
export function readLocalStatus(store: LocalStateStore, name: string): RolloutStatus {
  return parseStatus(readFileSync(store.statusFile(name), 'utf8'));
}

/** Polls a local rollout's status file until `ok`; the error names what was awaited, the last status and the controller's log tail. */
export async function waitForLocalStatus(store: LocalStateStore, name: string, what: string, ok: (s: RolloutStatus) => boolean, options: { timeoutMs?: number; controller?: ManagedProcess } = {}): Promise<RolloutStatus> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: RolloutStatus | undefined;
  for (;;) {
    try {
      last = readLocalStatus(store, name);
      if (ok(last)) return last;
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) throw new Error(`${name} did not reach ${what} in ${timeoutMs} ms; last status ${JSON.stringify(last)}\n${options.controller?.logTail(20) ?? ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
