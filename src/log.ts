import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Keys that may hold secrets anywhere in a logged object. */
const REDACT = ['password', 'bindPassword', 'token', 'adminToken', 'authorization', '*.password', '*.bindPassword', '*.token', '*.authorization', 'req.headers.authorization'];

/** One JSON line per event on stdout (or the given stream, for tests). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'rcptgate' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
