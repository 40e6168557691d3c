/** Ctrl-C (and SIGTERM) as an AbortSignal for a long command that stops a local stack; release() removes the handlers. */
export function interruptSignal(reason = 'interrupted; the local stack was stopped'): { signal: AbortSignal; release(): void } {
  const aborter = new AbortController();
  const interrupt = () => aborter.abort(new Error(reason));
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  return {
    signal: aborter.signal,
    release() {
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
    },
  };
}
