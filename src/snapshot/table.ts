import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Open-addressing hash index over 32-bit values, for the compact snapshot store: one Uint32Array
 * of [hash, value + 1] pairs (0 marks an empty slot), linear probing, backward-shift deletion (no
 * tombstones, so lookups never slow down with churn). The slot of a hash is `hash * capacity /
 * 2^32`, so any capacity works and the array can be written to a file and read back as it is.
 * Keys live elsewhere: callers compare them through the value.
 *
 * Growing is spread over the inserts that follow: rehashing millions of slots at once held the
 * event loop for half a second at 7.6 million entries (a full sync of a large directory, with
 * lookups waiting). Past 70 % load a table twice the entries' size is built beside `slots` a hash range
 * at a time, a few slots per insert, and swapped in when complete; until then `slots` stays the
 * whole index (lookups read it alone) and every change to a hash already copied is made in both.
 */
export class HashIndex {
  slots: Uint32Array;
  count = 0;
  /** The larger table being built while growing, else null. */
  private next2: Uint32Array | null = null;
  /** Hashes below this are copied into next2 (up to 2^32: complete). */
  private copiedBelow = 0;

  constructor(capacity = 16, slots?: Uint32Array, count = 0) {
    this.slots = slots ?? new Uint32Array(Math.max(4, capacity) * 2);
    this.count = count;
  }

  get capacity(): number {
    return this.slots.length >>> 1;
  }

  /** The first slot to probe for `hash`. */
  home(hash: number): number {
    return homeIn(this.capacity, hash);
  }

  /** Next slot after `slot`, wrapping. */
  next(slot: number): number {
    return slot + 1 === this.capacity ? 0 : slot + 1;
  }

  /** Slot holding `value` under `hash`, or -1. */
  slotOf(hash: number, value: number): number {
    return slotIn(this.slots, hash, value + 1);
  }

  /** Adds a value (the caller knows its key is absent); grows past 70 % load, a step per insert. */
  insert(hash: number, value: number): void {
    const cap = this.capacity;
    if (this.next2 === null && (this.count + 1) * 10 > cap * 7) {
      this.next2 = new Uint32Array(((this.count + 1) * 2 + 16) * 2);
      this.copiedBelow = 0;
    }
    if (this.next2 !== null) {
      // Nearly full before the copy caught up (it cannot, at GROW_STEP slots per insert): finish now.
      if ((this.count + 1) * 100 > cap * 85) this.finishGrowth();
      else this.growStep(GROW_STEP);
    }
    place(this.slots, hash, value + 1);
    if (this.next2 !== null && hash < this.copiedBelow) place(this.next2, hash, value + 1);
    this.count++;
  }

  set(slot: number, value: number): void {
    const s = this.slots;
    if (this.next2 !== null && s[slot * 2]! < this.copiedBelow) {
      const h = s[slot * 2]!;
      const there = slotIn(this.next2, h, s[slot * 2 + 1]!);
      if (there >= 0) this.next2[there * 2 + 1] = value + 1;
    }
    s[slot * 2 + 1] = value + 1;
  }

  value(slot: number): number {
    return this.slots[slot * 2 + 1]! - 1;
  }

  /** Empties a slot and shifts later members of its probe run back, so no run is broken. */
  removeAt(slot: number): void {
    const s = this.slots;
    if (this.next2 !== null && s[slot * 2]! < this.copiedBelow) {
      const there = slotIn(this.next2, s[slot * 2]!, s[slot * 2 + 1]!);
      if (there >= 0) removeIn(this.next2, there);
    }
    removeIn(s, slot);
    this.count--;
  }

  /** Completes a growth in progress at once (before the caller rewrites every slot's value). */
  finishGrowth(): void {
    while (this.next2 !== null) this.growStep(1 << 30);
  }

  /** A larger table is being built beside `slots`. */
  get growing(): boolean {
    return this.next2 !== null;
  }

  /** Copies about `span` more home slots of a growth in progress. */
  growSome(span: number): void {
    if (this.next2 !== null) this.growStep(span);
  }

  /** Copies the entries of the next hash range, about `span` home slots, into next2. */
  private growStep(span: number): void {
    const s = this.slots;
    const cap = this.capacity;
    const from = this.copiedBelow;
    const to = Math.min(4294967296, from + Math.ceil((span * 4294967296) / cap));
    // An entry sits between its home and the end of its run: scan from home(from) through
    // home(to - 1), then on to the first empty slot.
    const last = homeIn(cap, to - 1);
    let reachedLast = false;
    for (let i = homeIn(cap, from), n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      if (i === last) reachedLast = true;
      const stored = s[i * 2 + 1]!;
      if (stored === 0) {
        if (reachedLast) break;
        continue;
      }
      const h = s[i * 2]!;
      if (h >= from && h < to) place(this.next2!, h, stored);
    }
    this.copiedBelow = to;
    if (to === 4294967296) {
      this.slots = this.next2!;
      this.next2 = null;
    }
  }
}

/** Home slots copied per turn of the event loop when a growth is completed (settleGrowth). */
const SETTLE_STEP = 1 << 16;

/**
 * Completes the growth in progress of `indexes`, a step per turn of the event loop. A store about
 * to be published or written must not keep its fuller old table beside an unused larger one
 * (twice the index memory, longer probes) until inserts that may never come finish the copy.
 */
export async function settleGrowth(indexes: readonly HashIndex[]): Promise<void> {
  for (const index of indexes) {
    while (index.growing) {
      index.growSome(SETTLE_STEP);
      await nextTurn();
    }
  }
}

/** Home slots per insert a growth copies: it completes within capacity / 64 inserts, long before 85 % load. */
const GROW_STEP = 64;

function homeIn(capacity: number, hash: number): number {
  return Math.min(capacity - 1, Math.floor((hash * capacity) / 4294967296));
}

function slotIn(s: Uint32Array, hash: number, stored: number): number {
  const cap = s.length >>> 1;
  for (let i = homeIn(cap, hash); ; i = i + 1 === cap ? 0 : i + 1) {
    const v = s[i * 2 + 1]!;
    if (v === 0) return -1;
    if (v === stored && s[i * 2] === hash) return i;
  }
}

function place(s: Uint32Array, hash: number, stored: number): void {
  const cap = s.length >>> 1;
  let i = homeIn(cap, hash);
  while (s[i * 2 + 1] !== 0) i = i + 1 === cap ? 0 : i + 1;
  s[i * 2] = hash;
  s[i * 2 + 1] = stored;
}

/** Backward-shift deletion of slot `slot` in `s`. */
function removeIn(s: Uint32Array, slot: number): void {
  const cap = s.length >>> 1;
  const next = (x: number) => (x + 1 === cap ? 0 : x + 1);
  let hole = slot;
  s[hole * 2] = 0;
  s[hole * 2 + 1] = 0;
  for (let j = next(hole); s[j * 2 + 1] !== 0; j = next(j)) {
    const h = homeIn(cap, s[j * 2]!);
    // Move j into the hole unless its home lies cyclically in (hole, j].
    const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
    if (inRange) continue;
    s[hole * 2] = s[j * 2]!;
    s[hole * 2 + 1] = s[j * 2 + 1]!;
    s[j * 2] = 0;
    s[j * 2 + 1] = 0;
    hole = j;
  }
}

/** FNV-1a's offset basis: the seed of every index written before seeds (file format 3 and older). */
export const FIXED_SEED = 0x811c9dc5;

/**
 * FNV-1a over bytes from `seed`, then a murmur3 finalizer so close keys spread over the whole
 * range. With a fixed seed anyone can compute colliding keys offline (meet in the middle through
 * FNV's invertible steps: thousands of addresses on one hash in a second), and one who adds them
 * to the directory turns every lookup near them into a walk of the whole cluster; each store
 * draws its own seed (store.ts), which the attacker does not see.
 */
export function hashBytes(b: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Which values an index read from a file may hold: record offsets (`chunk << 24 | position`)
 * whose position is at most `ends[chunk]`, or entry ids set in the bitset `live`.
 */
export type KnownValues = { ends: Int32Array } | { live: Uint32Array };

/** Whether `value` is known: an offset inside the data, or a live entry id. */
export function isKnown(known: KnownValues, value: number): boolean {
  if ('ends' in known) return (value & 0xffffff) <= (known.ends[value >>> 24] ?? -1);
  return ((known.live[value >>> 5] ?? 0) >>> (value & 31)) & 1 ? true : false;
}

/**
 * Adopts index slots read from a file; every value must be known and a slot must stay free.
 * One closure-free pass per index: it runs at every start over millions of slots.
 */
export function adoptIndex(slots: Uint32Array, what: string, known: KnownValues): HashIndex {
  let count = 0;
  let bad = 0;
  const ends = 'ends' in known ? known.ends : null;
  const live = 'live' in known ? known.live : new Uint32Array(0);
  for (let i = 1; i < slots.length; i += 2) {
    const v = slots[i]!;
    if (v === 0) continue;
    const value = v - 1;
    count++;
    if (ends !== null) {
      if ((value & 0xffffff) > (ends[value >>> 24] ?? -1)) bad++;
    } else if ((((live[value >>> 5] ?? 0) >>> (value & 31)) & 1) === 0) bad++;
  }
  if (bad > 0) throw new Error(`the ${what} index names an unknown entry`);
  if (slots.length < 8 || count * 10 > (slots.length >>> 1) * 9) throw new Error(`the ${what} index is malformed`);
  return new HashIndex(0, slots, count);
}
