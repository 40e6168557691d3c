import { randomBytes } from 'node:crypto';

/** Route tokens are random hex, at least 128 bits. */
export const ROUTE_TOKEN_PATTERN = /^[0-9a-f]{32,}$/;

/**
 * A fresh route token: 128 random bits as hex. The per-version routes match it besides
 * x-fledge-version and only extproc sends it, so a client cannot select a version by header
 * (docs/extproc.md, "Route token").
 */
export function newRouteToken(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Set on the response by every per-version route (never by the weighted route) to the
 * version it sent the request to: the proxy's own word on which version answered. extproc
 * reads and removes it; a request extproc routed whose answer lacks it took the weighted
 * route, because the proxy's routes were behind extproc's state (docs/extproc.md).
 */
export const SERVED_BY_HEADER = 'x-fledge-served-by';
