import { OPEN_FILE_LIMIT } from '../app/data-lock.js';
import type { Config } from '../config/schema.js';

/** What the operator can do about each error a listener's bind can fail with. */
const HINTS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (another process holds the port)',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'the address is not one of this host\'s',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved (DNS failure)',
  EMFILE: `too many open files: ${OPEN_FILE_LIMIT}`,
  ENFILE: `too many open files: ${OPEN_FILE_LIMIT}`,
};

/**
 * A listener's bind failure that passes by itself: the resolver down for a moment, the system's
 * file table full (another process's leak). 78 is a configuration problem, where a supervisor
 * stops restarting (systemd's RestartPreventExitStatus=78); these are worth a restart (75).
 */
const PASSING = new Set(['EAI_AGAIN', 'ENFILE']);

/** The exit status of serve for a listener that could not bind with `code`. */
export function listenExitCode(code: string): number {
  return PASSING.has(code) ? 75 : 78;
}

interface NetError {
  code?: unknown;
  port?: unknown;
  address?: unknown;
  hostname?: unknown;
}

/**
 * A listener that could not bind, as one line naming its `listen.*` key; null for any other
 * error. The start-up log then says what to change instead of printing a stack trace.
 */
export function listenFailure(err: unknown, config: Readonly<Config>): { key: string; code: string; message: string } | null {
  const e = (err ?? {}) as NetError;
  if (typeof e.code !== 'string' || !(e.code in HINTS)) return null;
  for (const [key, text] of Object.entries(config.listen)) {
    if (text === null) continue;
    const colon = text.lastIndexOf(':');
    const host = text.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(text.slice(colon + 1));
    const bound = e.port === port && (e.address === host || typeof e.address !== 'string' || host === 'localhost');
    if (bound || e.hostname === host) {
      return { key: `listen.${key}`, code: e.code, message: `cannot listen on listen.${key} (${text}): ${HINTS[e.code]}` };
    }
  }
  return null;
}
