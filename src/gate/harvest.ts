/**
 * Directory harvest protection (docs/harvest-protection.md): a client address that collects more
 * than `maxUnknown` unknown recipients within `windowMs` is flagged. What a flagged client gets
 * depends on the action:
 *  - `reject`: every recipient, valid or not, is refused (421) without asking the directory,
 *    until `windowMs` has passed since the unknown that tripped it.
 *  - `tarpit` (default): every answer is delayed by `delayMs(client)`, valid and unknown alike,
 *    so timing tells them apart no better than the reply would; the delay grows by `delayStepMs`
 *    with each unknown past the limit, up to `maxDelayMs`, and the flag lifts `windowMs` after
 *    the last unknown. Valid recipients still pass: a shared sending IP is slowed, not deferred.
 *    A flagged client has `maxHeld` places in the tarpit at once (hold()); past them it is
 *    refused (421), as each held answer keeps one of the MTA's processes waiting.
 * `maxUnknown: 0` therefore flags a client at its first unknown recipient.
 *
 * Memory is bounded: at most `maxClients` clients are tracked (least recently seen evicted
 * first), each holding at most maxUnknown + 1 timestamps and as many address digests (1,024 at
 * most). Clients are keyed by their address as the MTA reports it; the front ends key requests
 * without one by the connection's peer address.
 * An IPv6 client counts as its network (`ipv6PrefixBits`, /64 by default): one host or customer
 * holds at least a /64 and may send from any address in it, so a key per address would let a
 * harvester start a fresh count with every connection.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { ipv6Network } from './ipv6-network.js';

export type HarvestAction = 'tarpit' | 'reject';

export interface HarvestOptions {
  /** What a flagged client gets (default tarpit). */
  action?: HarvestAction;
  /** Tarpit: added delay per unknown past the limit (ms, default 1000). */
  delayStepMs?: number;
  /** Tarpit: the delay never exceeds this (ms, default 5,000). */
  maxDelayMs?: number;
  /** Unknown recipients tolerated per client within the window. */
  maxUnknown: number;
  /** Sliding window, ms. */
  windowMs: number;
  /** Clients tracked at once (default 100,000). */
  maxClients?: number;
  /** IPv6 clients count per network of this many leading bits (default 64; 128: per address). */
  ipv6PrefixBits?: number;
  /** Tarpit: answers of one flagged client held back at once; past it the client is refused (421). Default 4. */
  maxHeld?: number;
  /** Milliseconds clock, injectable for tests. */
  now?: () => number;
}

interface ClientState {
  /** Times of recent unknown recipients, oldest first. */
  unknowns: number[];
  /** Flagged (refused or tarpitted) until this time (ms), or 0. */
  blockedUntil: number;
  /** Tarpit: unknowns counted since the client was flagged. */
  excess: number;
  /** Digests of the unknown addresses named within the window, oldest first, and when each was first named. */
  named: number[];
  namedAt: number[];
  /** Tarpit: when each answer now held back for the client is released (at most maxHeld). */
  heldUntil: readonly number[];
}

/** No answers held back: one array for every client, never changed (hold() makes a new one). */
const NONE_HELD: readonly number[] = Object.freeze([]);

/** Addresses remembered per client past maxUnknown + 1 (a tarpitted client goes on naming new ones). */
const NAMED_MAX = 1_024;

/** 48 bits of the address's SHA-256: a number, as small as a timestamp. */
function digestOf(address: string): number {
  return createHash('sha256').update(address).digest().readUIntBE(0, 6);
}

export class HarvestGuard {
  readonly maxUnknown: number;
  readonly windowMs: number;
  readonly action: HarvestAction;
  readonly delayStepMs: number;
  readonly maxDelayMs: number;
  readonly ipv6PrefixBits: number;
  readonly maxHeld: number;
  private readonly now: () => number;
  private readonly clients: LRUCache<string, ClientState>;
  /** keyOf() of recent IPv6 clients. */
  private readonly networks = new Map<string, string>();

  constructor(options: HarvestOptions) {
    if (!Number.isInteger(options.maxUnknown) || options.maxUnknown < 0) throw new RangeError('maxUnknown must be an integer >= 0');
    if (!(options.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    this.maxUnknown = options.maxUnknown;
    this.windowMs = options.windowMs;
    this.action = options.action ?? 'tarpit';
    this.delayStepMs = options.delayStepMs ?? 1_000;
    this.maxDelayMs = options.maxDelayMs ?? 5_000;
    // Windows and flags are intervals: on the monotonic clock, a wall clock stepped back an hour
    // does not keep a shared MTA flagged (refused, in reject mode) for that hour.
    this.now = options.now ?? (() => performance.now());
    this.clients = new LRUCache({ max: options.maxClients ?? 100_000 });
    const bits = options.ipv6PrefixBits ?? 64;
    if (!Number.isInteger(bits) || bits < 1 || bits > 128) throw new RangeError('ipv6PrefixBits must be an integer from 1 to 128');
    this.ipv6PrefixBits = bits;
    this.maxHeld = options.maxHeld ?? 4;
  }

  /** The key a client address is counted under (every method keys by it): an IPv6 address as its network, anything else as it is. */
  keyOf(client: string): string {
    if (!client.includes(':')) return client;
    let key = this.networks.get(client);
    if (key !== undefined) return key;
    try {
      key = ipv6Network(client, this.ipv6PrefixBits) ?? client;
    } catch {
      key = client; // defensive: a key per address rather than a failed request
    }
    // A session asks for one client recipient after recipient: remember the last few thousand.
    if (this.networks.size >= 4096) this.networks.clear();
    this.networks.set(client, key);
    return key;
  }

  /** Clients currently tracked. */
  get size(): number {
    return this.clients.size;
  }

  /** True while `client` is flagged (refused in reject mode, delayed in tarpit mode). */
  isBlocked(client: string | null | undefined): boolean {
    return this.flagged(client) !== undefined;
  }

  /** Tarpit mode: how long to hold every answer for `client` now (0 when not flagged). */
  delayMs(client: string | null | undefined): number {
    if (this.action !== 'tarpit') return 0;
    const state = this.flagged(client);
    return state === undefined ? 0 : Math.min(this.maxDelayMs, this.delayStepMs * Math.max(1, state.excess));
  }

  /**
   * Tarpit: takes one of the client's places for an answer held back `ms` from now, or returns
   * false when all `maxHeld` are taken (the caller refuses the recipient with 421 instead). Each
   * held answer keeps one of the MTA's smtpd processes waiting: unbounded, ten sessions of one
   * flagged spammer held every process of an MX with a process limit of 10 for 110 s (Postfix
   * cuts a session at its 20th error), and another sender's mail waited all that time. A 421
   * makes the MTA hang up at once; the sender retries later, nothing is lost.
   */
  hold(client: string | null | undefined, ms: number): boolean {
    const state = this.flagged(client);
    if (state === undefined) return true;
    const now = this.now();
    const held = state.heldUntil.filter((t) => t > now);
    if (held.length >= this.maxHeld) return false;
    held.push(now + ms);
    state.heldUntil = held;
    return true;
  }

  private flagged(client: string | null | undefined): ClientState | undefined {
    if (!client) return undefined;
    const key = this.keyOf(client);
    const state = this.clients.get(key);
    if (!state || state.blockedUntil === 0) return undefined;
    if (this.now() < state.blockedUntil) return state;
    // The flag has run its course: start counting afresh.
    this.clients.delete(key);
    return undefined;
  }

  /**
   * Whether `client` names this unknown `address` for the first time within the window (it is
   * then remembered). One asked again teaches a harvester nothing, while a monitoring host paging
   * a departed address with every alert, or a list server with one stale subscriber, repeats it
   * with each message: counted each time it was flagged within a few messages. The addresses are
   * kept with the client's count: one set for every client, 50,000 pairs, was emptied by a busy
   * site's stream of unknowns from other senders and the repeats counted again. Different
   * spellings of one mailbox count apart, and one forgotten early counts again: never less.
   */
  firstAsk(client: string | null | undefined, address: string): boolean {
    if (!client) return true;
    const now = this.now();
    const key = this.keyOf(client);
    let state = this.clients.get(key);
    if (!state) this.clients.set(key, (state = newState()));
    const cutoff = now - this.windowMs;
    let drop = expired(state.namedAt, cutoff);
    const digest = digestOf(address);
    if (state.named.indexOf(digest, drop) >= 0) return false;
    if (state.named.length - drop >= Math.min(this.maxUnknown + 1, NAMED_MAX)) drop++;
    state.named = appended(state.named, drop, digest);
    state.namedAt = appended(state.namedAt, drop, now);
    return true;
  }

  /**
   * Counts one unknown recipient for `client`. Returns true when the client is flagged after it
   * (reject mode: the caller refuses it with the harvest reply instead of "user unknown").
   */
  recordUnknown(client: string | null | undefined): boolean {
    if (!client) return false;
    const now = this.now();
    const key = this.keyOf(client);
    let state = this.clients.get(key);
    if (state && state.blockedUntil !== 0) {
      if (now < state.blockedUntil) {
        if (this.action === 'tarpit') {
          // Each further unknown lengthens the delay and keeps the flag up.
          state.excess++;
          state.blockedUntil = now + this.windowMs;
        }
        return true;
      }
      // The flag has run its course: count afresh, still knowing the addresses named.
      Object.assign(state, { unknowns: [], blockedUntil: 0, excess: 0 });
    }
    if (!state) this.clients.set(key, (state = newState()));
    state.unknowns = appended(state.unknowns, expired(state.unknowns, now - this.windowMs), now);
    if (state.unknowns.length > this.maxUnknown) {
      state.blockedUntil = now + this.windowMs;
      state.unknowns = [];
      state.excess = 1;
      return true;
    }
    return false;
  }
}

/** How many of the oldest `times` (ascending) are at or before `cutoff`. */
function expired(times: readonly number[], cutoff: number): number {
  let n = 0;
  while (n < times.length && times[n]! <= cutoff) n++;
  return n;
}

/**
 * `list` without its first `drop` entries, plus `value`: a new array of exactly that length. Grown
 * with push() and emptied with shift(), V8 kept room for about twice the entries, and 100,000
 * clients of 20 unknowns each held 133 MB of heap, half of what Node gives a 512 MiB container.
 */
function appended(list: readonly number[], drop: number, value: number): number[] {
  const out = new Array<number>(list.length - drop + 1);
  for (let i = drop; i < list.length; i++) out[i - drop] = list[i]!;
  out[out.length - 1] = value;
  return out;
}

function newState(): ClientState {
  return { unknowns: [], blockedUntil: 0, excess: 0, named: [], namedAt: [], heldUntil: NONE_HELD };
}
