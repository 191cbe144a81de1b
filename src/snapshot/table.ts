/**
 * Open-addressing hash index over 32-bit values, for the compact snapshot store: one Uint32Array
 * of [hash, value + 1] pairs (0 marks an empty slot), linear probing, backward-shift deletion (no
 * tombstones, so lookups never slow down with churn). The slot of a hash is `hash * capacity /
 * 2^32`, so any capacity works and the array can be written to a file and read back as it is.
 * Keys live elsewhere: callers compare them through the value.
 */
export class HashIndex {
  slots: Uint32Array;
  count = 0;

  constructor(capacity = 16, slots?: Uint32Array, count = 0) {
    this.slots = slots ?? new Uint32Array(Math.max(4, capacity) * 2);
    this.count = count;
  }

  get capacity(): number {
    return this.slots.length >>> 1;
  }

  /** The first slot to probe for `hash`. */
  home(hash: number): number {
    return Math.min(this.capacity - 1, Math.floor((hash * this.capacity) / 4294967296));
  }

  /** Next slot after `slot`, wrapping. */
  next(slot: number): number {
    return slot + 1 === this.capacity ? 0 : slot + 1;
  }

  /** Slot holding `value` under `hash`, or -1. */
  slotOf(hash: number, value: number): number {
    const s = this.slots;
    for (let i = this.home(hash); ; i = this.next(i)) {
      const v = s[i * 2 + 1]!;
      if (v === 0) return -1;
      if (v === value + 1 && s[i * 2] === hash) return i;
    }
  }

  /** Adds a value (the caller knows its key is absent); grows past 70 % load. */
  insert(hash: number, value: number): void {
    if ((this.count + 1) * 10 > this.capacity * 7) this.resize(Math.ceil(((this.count + 1) * 2) | 0) + 16);
    this.place(hash, value + 1);
    this.count++;
  }

  set(slot: number, value: number): void {
    this.slots[slot * 2 + 1] = value + 1;
  }

  value(slot: number): number {
    return this.slots[slot * 2 + 1]! - 1;
  }

  /** Empties a slot and shifts later members of its probe run back, so no run is broken. */
  removeAt(slot: number): void {
    const s = this.slots;
    let hole = slot;
    s[hole * 2] = 0;
    s[hole * 2 + 1] = 0;
    for (let j = this.next(hole); s[j * 2 + 1] !== 0; j = this.next(j)) {
      const h = this.home(s[j * 2]!);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (inRange) continue;
      s[hole * 2] = s[j * 2]!;
      s[hole * 2 + 1] = s[j * 2 + 1]!;
      s[j * 2] = 0;
      s[j * 2 + 1] = 0;
      hole = j;
    }
    this.count--;
  }

  private place(hash: number, stored: number): void {
    const s = this.slots;
    let i = this.home(hash);
    while (s[i * 2 + 1] !== 0) i = this.next(i);
    s[i * 2] = hash;
    s[i * 2 + 1] = stored;
  }

  private resize(capacity: number): void {
    const old = this.slots;
    this.slots = new Uint32Array(capacity * 2);
    for (let i = 0; i < old.length; i += 2) if (old[i + 1] !== 0) this.place(old[i]!, old[i + 1]!);
  }
}

/** FNV-1a over bytes, then a murmur3 finalizer so close keys spread over the whole range. */
export function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
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
