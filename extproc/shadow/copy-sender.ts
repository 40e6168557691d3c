/**
 * Sends a shadowed request's copy through the proxy that serves the service, pinned by a
 * signed x-fledge-shadow header to one version (the candidate, or the stable again for the
 * noise floor), and reads the answer itself: Envoy's own mirror discards the answer, this
 * does not. Off the user's path: copies start after extproc has answered Envoy, a bounded
 * number are in flight (more are dropped and counted), and one that errs or hangs past the
 * timeout is an answer that failed, nothing more.
 */
import http from 'node:http';
import https from 'node:https';
import { signProbe, SHADOW_HEADER } from '../probes/probe-token.js';
import { emptyObservation, type Observation } from '../quality/observation.js';
import { ResponseObserver, type JsonAnswerReader } from '../quality/openai-response.js';

export interface CopyRequest {
  service: string;
  /** The version the copy is pinned to. */
  version: string;
  /** The user request's :authority and :path, method and headers worth copying. */
  authority: string;
  path: string;
  method: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface CopyAnswer {
  status: number | undefined;
  observation: Observation;
  latencyMs: number;
  /** Why the copy got no answer (timeout, connection error), when it did not. */
  error?: string;
  /** Why the answer is not the pinned version's (the proxy did not route the copy through extproc's pin); not an answer of that version. */
  unpinned?: string;
}

/** The response header extproc sets to the version that served (absent when the proxy failed open past extproc, or served by its weighted route). */
const ROUTED_VERSION_HEADER = 'x-fledge-version';

/**
 * Why an answer to a copy pinned to `version` is not that version's, or undefined when it is.
 * Pure. When the proxy's ext_proc call misses its timeout it fails open: the copy takes the
 * weighted route (the stable, in a shadow stage) and comes back without extproc's version
 * header; so does a copy whose pinned route the proxy did not have yet (extproc checks the
 * route's x-fledge-served-by). Such an answer must not be paired as the candidate's.
 */
export function unpinnedReason(headers: Record<string, string | string[] | undefined>, version: string): string | undefined {
  const routed = headers[ROUTED_VERSION_HEADER];
  if (routed === version) return undefined;
  return routed === undefined ? `no ${ROUTED_VERSION_HEADER} on the answer (the proxy did not run extproc for the copy, or its routes were behind extproc's state and its weighted route served it)` : `answered by ${String(routed)}, not the pinned ${version}`;
}

export interface CopySenderOptions {
  via: URL;
  secret: string | Buffer;
  maxInFlight: number;
  timeoutMs: number;
  maxBodyBytes: number;
  /** Reads a large JSON answer off the event loop (the quality worker thread). */
  readJson?: JsonAnswerReader;
  now?: () => number;
}

const TOKEN_TTL_SECONDS = 30;

export class CopySender {
  private inFlight = 0;
  private readonly agent: http.Agent;

  constructor(private readonly options: CopySenderOptions) {
    const secure = options.via.protocol === 'https:';
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: options.maxInFlight }) : new http.Agent({ keepAlive: true, maxSockets: options.maxInFlight });
  }

  /** Whether another copy may start now; the caller counts a drop otherwise. */
  hasRoom(extra = 1): boolean {
    return this.inFlight + extra <= this.options.maxInFlight;
  }

  get active(): number {
    return this.inFlight;
  }

  async send(copy: CopyRequest): Promise<CopyAnswer> {
    this.inFlight++;
    const started = process.hrtime.bigint();
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    try {
      return await this.exchange(copy, elapsedMs);
    } finally {
      this.inFlight--;
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private exchange(copy: CopyRequest, elapsedMs: () => number): Promise<CopyAnswer> {
    const { via } = this.options;
    const secure = via.protocol === 'https:';
    const token = signProbe(this.options.secret, copy.service, copy.version, (this.options.now ?? Date.now)(), TOKEN_TTL_SECONDS, 'shadow');
    return new Promise((resolve) => {
      let settled = false;
      const done = (answer: CopyAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(answer);
      };
      const failed = (why: string, status?: number): CopyAnswer => ({ status, observation: { ...emptyObservation(), truncated: true }, latencyMs: elapsedMs(), error: why });
      const req = (secure ? https : http).request(
        {
          protocol: via.protocol,
          hostname: via.hostname,
          port: via.port || (secure ? 443 : 80),
          path: copy.path,
          method: copy.method,
          agent: this.agent,
          headers: { ...copy.headers, host: copy.authority, [SHADOW_HEADER]: token, 'content-length': copy.body.length },
        },
        (res) => {
          const unpinned = unpinnedReason(res.headers, copy.version);
          if (unpinned) {
            res.resume();
            done({ ...failed(unpinned, res.statusCode), unpinned });
            return;
          }
          const observer = new ResponseObserver(res.headers['content-type'], this.options.maxBodyBytes, () => elapsedMs() / 1000, this.options.readJson ? { offThread: this.options.readJson } : {});
          res.on('data', (chunk: Buffer) => observer.push(chunk));
          res.on('end', () => {
            const latencyMs = elapsedMs();
            void Promise.resolve(observer.finishOffThread(true)).then((observation) => done({ status: res.statusCode, observation, latencyMs }));
          });
          res.on('error', (err) => done(failed(`answer cut: ${err.message}`, res.statusCode)));
          res.on('aborted', () => done(failed('answer cut', res.statusCode)));
        },
      );
      const timer = setTimeout(() => {
        done(failed(`no answer within ${this.options.timeoutMs} ms`));
        req.destroy();
      }, this.options.timeoutMs);
      req.on('error', (err) => done(failed(err.message)));
      req.end(copy.body);
    });
  }
}
