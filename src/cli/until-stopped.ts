import type { Logger } from '../log.js';
import { EXIT } from './check.js';

/**
 * Drains and stops `app` at the first SIGTERM or SIGINT (`stopping` hears of it), or at once for
 * one `caught` while starting; the exit code. `replaces`: the handler it takes over from.
 */
export function untilStopped(app: { close(): Promise<void> }, logger: Logger, stopping: () => void, replaces: (s: NodeJS.Signals) => void, caught: () => string | null): Promise<number> {
  let stopped = false;
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (stopped) return;
      stopped = true;
      stopping();
      logger.info({ signal }, 'draining and stopping');
      void app.close().then(
        () => logger.flush(() => resolve(EXIT.OK)),
        (e: unknown) => {
          logger.error({ err: e }, 'error while stopping');
          logger.flush(() => resolve(1));
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM')).on('SIGINT', () => stop('SIGINT'));
    // Only now, never leaving none: libuv gives a signal caught meanwhile to the closed handle (lost).
    process.off('SIGTERM', replaces).off('SIGINT', replaces);
    const signal = caught();
    if (signal !== null) stop(signal);
  });
}
