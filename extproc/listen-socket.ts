import { lstatSync, rmSync } from 'node:fs';

/**
 * A socket file left by a previous extproc (killed, or restarted in its pod) would make the
 * bind fail; a socket is removed, anything else at that path is an error, never deleted.
 */
export function removeStaleSocket(path: string): void {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!stat.isSocket()) throw new Error(`grpc.socket ${path} exists and is not a socket; refusing to replace it`);
  rmSync(path);
}
