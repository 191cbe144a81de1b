/**
 * Directory harvest protection (CONTRACT "Policy delegation"): a client address that collects
 * more than `maxUnknown` unknown recipients within `windowMs` is refused — every recipient, valid
 * or not, without asking the directory — until `windowMs` has passed since the unknown that
 * tripped it. `maxUnknown: 0` therefore blocks a client at its first unknown recipient.
 *
 * Memory is bounded: at most `maxClients` clients are tracked (least recently seen evicted
 * first), each holding at most maxUnknown + 1 timestamps. Clients are keyed by their address as
 * the MTA reports it; requests without a client address are never tracked.
 */
import { LRUCache } from 'lru-cache';

export interface HarvestOptions {
  /** Unknown recipients tolerated per client within the window. */
  maxUnknown: number;
  /** Sliding window, ms. */
  windowMs: number;
  /** Clients tracked at once (default 100,000). */
  maxClients?: number;
  /** Milliseconds clock, injectable for tests. */
  now?: () => number;
}

interface ClientState {
  /** Times of recent unknown recipients, oldest first. */
  unknowns: number[];
  /** Refused until this time (ms), or 0. */
  blockedUntil: number;
}

export class HarvestGuard {
  readonly maxUnknown: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private readonly clients: LRUCache<string, ClientState>;

  constructor(options: HarvestOptions) {
    if (!Number.isInteger(options.maxUnknown) || options.maxUnknown < 0) throw new RangeError('maxUnknown must be an integer >= 0');
    if (!(options.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    this.maxUnknown = options.maxUnknown;
    this.windowMs = options.windowMs;
    this.now = options.now ?? Date.now;
    this.clients = new LRUCache({ max: options.maxClients ?? 100_000 });
  }

  /** Clients currently tracked. */
  get size(): number {
    return this.clients.size;
  }

  /** True while `client` is refused. */
  isBlocked(client: string | null | undefined): boolean {
    if (!client) return false;
    const state = this.clients.get(client);
    if (!state || state.blockedUntil === 0) return false;
    if (this.now() < state.blockedUntil) return true;
    // The block has run its course: start counting afresh.
    this.clients.delete(client);
    return false;
  }

  /**
   * Counts one unknown recipient for `client`. Returns true when this one crossed the limit
   * (the caller refuses it with the harvest reply instead of "user unknown").
   */
  recordUnknown(client: string | null | undefined): boolean {
    if (!client) return false;
    const now = this.now();
    let state = this.clients.get(client);
    if (state && state.blockedUntil !== 0) {
      if (now < state.blockedUntil) return true;
      state = undefined;
    }
    if (!state) {
      state = { unknowns: [], blockedUntil: 0 };
      this.clients.set(client, state);
    }
    const cutoff = now - this.windowMs;
    while (state.unknowns.length > 0 && state.unknowns[0]! <= cutoff) state.unknowns.shift();
    state.unknowns.push(now);
    if (state.unknowns.length > this.maxUnknown) {
      state.blockedUntil = now + this.windowMs;
      state.unknowns = [];
      return true;
    }
    return false;
  }
}
