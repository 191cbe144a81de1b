/**
 * Handlers for the signals rcptgate uses, installed before any other of its modules is evaluated
 * (main.ts imports this one first). Loading the rest takes about half a second after every
 * start, and Node's defaults applied meanwhile: a SIGHUP (a reload sent right after a restart)
 * killed the process without a word, a SIGUSR1 opened the unauthenticated inspector for the life
 * of the process (user-signals.ts), a SIGTERM to PID 1 was lost. What they catch is handed on by
 * releaseEarlySignals() once the command's own handlers are in place.
 */
const SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGUSR1', 'SIGUSR2'];
const caught: NodeJS.Signals[] = [];
// Each signal once: a storm of SIGHUPs while loading is one reload, like a storm while serving.
const hold = (signal: NodeJS.Signals): void => void (caught.includes(signal) || caught.push(signal));
let holding = true;
for (const signal of SIGNALS) process.on(signal, hold);

/**
 * Removes the holding handlers (call it after installing the command's own, so a signal never
 * finds none) and delivers what they caught: to the handlers now installed, else by Node's default.
 */
export function releaseEarlySignals(): void {
  if (!holding) return;
  holding = false;
  const handled = SIGNALS.filter((signal) => process.listenerCount(signal) > 1);
  stopHolding(handled);
  // Loading runs without turning the event loop: a signal may have reached Node and not yet
  // `hold`. Removing the last handler now closed the handle with it pending, and it was lost
  // (a SIGHUP to check or sync, a SIGTERM to config check ran on to the end). Where no command
  // handler keeps the handle open, a full turn of the loop (its poll phase) hands it to `hold` first.
  setImmediate(() => setImmediate(() => stopHolding(SIGNALS.filter((signal) => !handled.includes(signal)))));
}

/** Removes `hold` from `signals` and delivers those of them it caught. */
function stopHolding(signals: readonly NodeJS.Signals[]): void {
  for (const signal of signals) process.off(signal, hold);
  for (const signal of caught.filter((s) => signals.includes(s))) {
    caught.splice(caught.indexOf(signal), 1);
    if (process.listenerCount(signal) > 0) process.emit(signal, signal);
    else process.kill(process.pid, signal);
  }
}
