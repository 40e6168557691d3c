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
