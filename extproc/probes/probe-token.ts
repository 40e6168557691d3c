/**
 * Golden-probe tokens: `x-fledge-probe: <version>.<expiry>.<nonce>.<mac>`, where
 * mac = hex HMAC-SHA256(secret, "service|version|expiry|nonce") and expiry is Unix seconds.
 * The prober signs; extproc verifies with the same secret and pins the request to that
 * version. A header that does not verify (wrong MAC, other service, expired, too far in
 * the future, or a nonce seen before) is ignored: the request is an ordinary user request.
 * Versions may contain dots, so the header is split from the right.
 *
 * Shadow copies (extproc/shadow/) are pinned the same way with `x-fledge-shadow`, signed
 * over "shadow|service|version|expiry|nonce": a probe token is no shadow token and back.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const PROBE_HEADER = 'x-fledge-probe';
export const SHADOW_HEADER = 'x-fledge-shadow';
export type TokenPurpose = 'probe' | 'shadow';
/** A probe is valid for at most this long; longer-lived tokens are refused, so replays have a short window. */
export const MAX_PROBE_TTL_SECONDS = 60;

export interface ProbeClaim {
  version: string;
  expiry: number;
  nonce: string;
  mac: string;
}

function mac(secret: string | Buffer, purpose: TokenPurpose, service: string, version: string, expiry: number, nonce: string): string {
  const message = `${service}|${version}|${expiry}|${nonce}`;
  return createHmac('sha256', secret).update(purpose === 'probe' ? message : `${purpose}|${message}`).digest('hex');
}

/** The header value for one probe of `service`/`version`, valid for `ttlSeconds`. */
export function signProbe(secret: string | Buffer, service: string, version: string, nowMs: number, ttlSeconds = 30, purpose: TokenPurpose = 'probe'): string {
  const expiry = Math.floor(nowMs / 1000) + Math.max(1, Math.min(ttlSeconds, MAX_PROBE_TTL_SECONDS));
  const nonce = randomBytes(12).toString('hex');
  return `${version}.${expiry}.${nonce}.${mac(secret, purpose, service, version, expiry, nonce)}`;
}

export function parseProbeHeader(value: string): ProbeClaim | undefined {
  const parts = value.trim().split('.');
  if (parts.length < 4) return undefined;
  const [expiryText, nonce, digest] = parts.slice(-3) as [string, string, string];
  const version = parts.slice(0, -3).join('.');
  if (!/^\d{1,12}$/.test(expiryText) || !/^[0-9a-f]{16,64}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(digest) || version === '') return undefined;
  return { version, expiry: Number(expiryText), nonce, mac: digest };
}

export type ProbeRejection = 'malformed' | 'bad-mac' | 'expired' | 'replayed';

/**
 * Verifies probe headers for one extproc replica. Nonces are remembered until their
 * expiry (bounded by MAX_PROBE_TTL_SECONDS), so a header captured and sent again is
 * refused by this replica; see docs/quality.md for what a replay to another replica can do.
 */
export class ProbeVerifier {
  private readonly seen = new Map<string, number>();
  /** Told of every nonce this verifier accepts (extproc's workers share them, so a replay to a sibling is refused). */
  onAccepted: ((nonce: string, expiry: number) => void) | undefined;

  constructor(
    private readonly secret: string | Buffer,
    private readonly now: () => number = Date.now,
    private readonly maxRemembered = 100_000,
    private readonly purpose: TokenPurpose = 'probe',
  ) {}

  verify(service: string, header: string): { ok: true; version: string } | { ok: false; why: ProbeRejection } {
    const claim = parseProbeHeader(header);
    if (!claim) return { ok: false, why: 'malformed' };
    const expected = Buffer.from(mac(this.secret, this.purpose, service, claim.version, claim.expiry, claim.nonce), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(claim.mac, 'hex'))) return { ok: false, why: 'bad-mac' };
    const nowSeconds = this.now() / 1000;
    if (claim.expiry < nowSeconds || claim.expiry > nowSeconds + MAX_PROBE_TTL_SECONDS + 5) return { ok: false, why: 'expired' };
    this.forgetExpired(nowSeconds);
    if (this.seen.has(claim.nonce)) return { ok: false, why: 'replayed' };
    if (this.seen.size >= this.maxRemembered) return { ok: false, why: 'replayed' }; // cannot remember it: refuse rather than allow a replay
    this.seen.set(claim.nonce, claim.expiry);
    this.onAccepted?.(claim.nonce, claim.expiry);
    return { ok: true, version: claim.version };
  }

  /** A nonce another verifier of the same secret accepted: refused here from now on. */
  remember(nonce: string, expiry: number): void {
    if (this.seen.size < this.maxRemembered && expiry >= this.now() / 1000) this.seen.set(nonce, expiry);
  }

  private forgetExpired(nowSeconds: number): void {
    // Insertion order is close to expiry order (TTLs are short and similar): stop at the first live one.
    for (const [nonce, expiry] of this.seen) {
      if (expiry >= nowSeconds) break;
      this.seen.delete(nonce);
    }
  }
}
