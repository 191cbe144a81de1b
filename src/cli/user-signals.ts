/**
 * SIGUSR1 and SIGUSR2 mean nothing to rcptgate, and Node's defaults for them are harmful: SIGUSR1
 * opens the V8 inspector on 127.0.0.1:9229, with no authentication (any local user, or any
 * container of the pod, can then run code as rcptgate and read its bind password and tokens),
 * and SIGUSR2 kills the process without a drain. Both are ignored, with a line saying so (at most
 * one a minute: a loop of `kill` must not flood the log).
 */
export type UserSignal = 'SIGUSR1' | 'SIGUSR2';

const REPORT_EVERY_MS = 60_000;

/** Installs the handlers; `report` is called for the first signal and then at most once a minute. */
export function ignoreUserSignals(report: (signal: UserSignal, ignoredSinceLastReport: number) => void): () => void {
  let lastReport = -Infinity;
  let unreported = 0;
  const handler = (signal: UserSignal): void => {
    const now = performance.now();
    if (now - lastReport < REPORT_EVERY_MS) {
      unreported++;
      return;
    }
    lastReport = now;
    const since = unreported;
    unreported = 0;
    report(signal, since);
  };
  process.on('SIGUSR1', handler);
  process.on('SIGUSR2', handler);
  return () => {
    process.off('SIGUSR1', handler);
    process.off('SIGUSR2', handler);
  };
}

export const USER_SIGNAL_MESSAGE = 'signal ignored: rcptgate has no use for SIGUSR1 or SIGUSR2 (SIGHUP reloads, SIGTERM stops)';
