/**
 * Open file descriptors against the process's limit (RLIMIT_NOFILE). At the limit accept() fails,
 * and libuv then accepts and closes the waiting connections with a descriptor it keeps in
 * reserve: peers see their connection closed unanswered (Postfix defers: 451 4.3.0), connections
 * already open are still served, and nothing in the process says so. The socket listeners
 * therefore look at most once a second (Linux: /proc/self) and log once per episode: an error
 * when the open descriptors come within 5% of the limit, info when they are well below it again.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../log.js';

const CHECK_EVERY_MS = 1_000;

/** The soft RLIMIT_NOFILE, or null where it cannot be read (not Linux, unlimited). */
function readLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Descriptors open now; `limit` when none is left even to count them. */
function openDescriptors(limit: number): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? limit : null;
  }
}

export class DescriptorWatch {
  private readonly limit = readLimit();
  private checkedAt = -Infinity;
  private near = false;

  /** Logs when the process comes near its descriptor limit and when it is clear of it again. */
  check(logger: Logger): void {
    const limit = this.limit;
    const now = performance.now();
    if (limit === null || now - this.checkedAt < CHECK_EVERY_MS) return;
    this.checkedAt = now;
    const open = openDescriptors(limit);
    if (open === null) return;
    const margin = Math.max(8, Math.floor(limit / 20));
    if (!this.near && open >= limit - margin) {
      this.near = true;
      logger.error({ event: 'fd_limit', open, limit }, 'open file descriptors near the limit (RLIMIT_NOFILE): at the limit new connections are closed unanswered; raise the limit (ulimit -n, LimitNOFILE=) or lower server.maxConnections');
    } else if (this.near && open < limit - 2 * margin) {
      this.near = false;
      logger.info({ event: 'fd_limit', open, limit }, 'open file descriptors well below the limit again');
    }
  }
}

/** One per process: every listener counts against the same limit. */
export const descriptors = new DescriptorWatch();
