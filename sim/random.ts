/** A source of uniform draws in [0, 1). */
export type Random = () => number;

/**
 * mulberry32: a tiny 32-bit seeded generator. Not cryptographic; good enough to make
 * simulated faults reproducible in tests and benchmarks.
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The root generator for a sim: seeded when a seed is given, Math.random otherwise.
 * Each request forks its own generator from one root draw, so request N sees the same
 * draws whatever earlier requests consumed (errors, latency shapes and streams draw
 * different amounts).
 */
export function rootRandom(seed: number | undefined): Random {
  return seed === undefined ? Math.random : seededRandom(seed);
}

export function forkRandom(root: Random): Random {
  return seededRandom(Math.floor(root() * 4294967296));
}

/** One standard normal draw (Box-Muller). */
export function standardNormal(random: Random): number {
  const u1 = 1 - random(); // (0, 1]: keeps log finite
  const u2 = random();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
