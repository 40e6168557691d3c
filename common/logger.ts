import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** One structured logger per process; components take a child with their name. */
export function createLogger(component: string, level: LevelWithSilent = defaultLevel()): Logger {
  return pino({ name: 'fledge', level, base: { component, pid: process.pid } });
}

function defaultLevel(): LevelWithSilent {
  const fromEnv = process.env.FLEDGE_LOG_LEVEL;
  const allowed: LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  return allowed.includes(fromEnv as LevelWithSilent) ? (fromEnv as LevelWithSilent) : 'info';
}
