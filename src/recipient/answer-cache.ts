/**
 * The engine's cache of directory answers: a least-recently-used map from normalized address to
 * { canonical, dn, freshUntil }, built for a million entries in a few hundred MB.
 *
 * A general-purpose LRU (lru-cache) keeps one object per answer plus its strings; at 10^6 entries
 * that is ~190 B each and a V8 heap that grows to twice that. Here an answer is a slot number:
 * freshness and list links live in typed arrays (off the V8 heap), the DN is stored as its first
 * RDN plus a shared id for the rest (`ou=people,dc=example,dc=com` is the same for most
 * entries), and the canonical address is kept only when it differs from the key.
 *
 * "No such entry" answers are also threaded on a recency list of their own. When the cache is
 * full, a new one takes the slot of the oldest one once they hold a quarter of the slots, and any
 * new answer does while they hold more (they filled the room a cache has after a start or a
 * flush): a flood of unknown addresses (a dictionary attack) cannot push out the valid answers
 * stale-if-error serves when the directory fails. Otherwise the least recently used answer of
 * either kind goes.
 */

/** One answer as the engine reads it. */
export interface CachedAnswer {
  /** Primary address; null: the directory said there is no such entry. */
  canonical: string | null;
  dn: string | null;
  /** Served as fresh until then (engine clock, ms). */
  freshUntil: number;
}

/** DN tails shared between entries; past this many distinct ones, DNs are kept whole. */
const MAX_DN_TAILS = 4096;
const NONE = -1;
/** Tail id meaning "no tail: the head is the whole DN". */
const WHOLE = 0;

/** A dense array of `n` empty slots (`new Array(n)` is a slow dictionary array for large n). */
function slots<T>(n: number): Array<T | undefined> {
  const a: Array<T | undefined> = [];
  for (let i = 0; i < n; i++) a.push(undefined);
  return a;
}

/** Encodes flat() copies (up to 3 bytes per UTF-16 unit): one buffer, not one per string. */
const scratch = Buffer.allocUnsafeSlow(3 * 1024);

/**
 * A flat copy: strings built by slicing or concatenation would otherwise keep their parent alive.
 * Runs on every answer the directory gives: an ASCII string (any byte count equal to its length)
 * comes back as a one-byte string without a UTF-8 decode or a Buffer of its own.
 */
function flat(s: string): string {
  if (s.length > 1024) return Buffer.from(s, 'utf8').toString('utf8');
  const n = scratch.write(s, 0, 'utf8');
  return n === s.length ? scratch.toString('latin1', 0, n) : scratch.toString('utf8', 0, n);
}

export class AnswerCache {
  readonly max: number;
  /** The shortest cache.positiveTtl a valid answer here was stored with: when it was cached is read as its expiry less this, never later than it was (superseded.ts). */
  shortestPositiveTtlMs = Infinity;
  private readonly index = new Map<string, number>();
  /** Per slot: the key (the same string the index holds). */
  private readonly keys: Array<string | undefined>;
  /** Per slot: canonical address when it differs from the key; null for "no such entry". */
  private readonly canonicals: Array<string | null | undefined>;
  /** Per slot: the DN up to its first comma (or whole), null for "no such entry". */
  private readonly heads: Array<string | null | undefined>;
  private readonly tails: Int32Array;
  private readonly fresh: Float64Array;
  /** Doubly linked recency list over slots: head = least recently used. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private lru = NONE;
  private mru = NONE;
  /** Per slot: 1 for a "no such entry" answer, on the list below as well. */
  private readonly unknown: Uint8Array;
  private readonly uprev: Int32Array;
  private readonly unext: Int32Array;
  private ulru = NONE;
  private umru = NONE;
  private unknowns = 0;
  /** Unknown answers that may take the slots of older valid ones. */
  private readonly unknownShare: number;
  /** Slots never used yet start here; freed slots go on `free`. */
  private unused = 0;
  private readonly free: Int32Array;
  private freeCount = 0;
  private readonly tailIds = new Map<string, number>();
  private readonly tailTexts: string[] = [''];

  /** Called when an answer is dropped to make room (not on delete or clear). */
  constructor(
    max: number,
    private readonly onEvict: () => void = () => undefined,
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer');
    this.max = max;
    this.keys = slots<string>(max);
    this.canonicals = slots<string | null>(max);
    this.heads = slots<string | null>(max);
    this.tails = new Int32Array(max);
    this.fresh = new Float64Array(max);
    this.prev = new Int32Array(max);
    this.next = new Int32Array(max);
    this.free = new Int32Array(max);
    this.unknown = new Uint8Array(max);
    this.uprev = new Int32Array(max);
    this.unext = new Int32Array(max);
    this.unknownShare = Math.max(1, Math.floor(max / 4));
  }

  get size(): number {
    return this.index.size;
  }

  /** The slot of `key`, marked most recently used; -1 when absent. */
  find(key: string): number {
    const slot = this.index.get(key);
    if (slot === undefined) return NONE;
    this.touch(slot);
    return slot;
  }

  /** Fresh-until time of a slot from find(). */
  freshUntil(slot: number): number {
    return this.fresh[slot]!;
  }

  /** Canonical address of a slot from find(); null for a "no such entry" answer. */
  canonical(slot: number): string | null {
    const c = this.canonicals[slot];
    if (c !== undefined) return c;
    return this.heads[slot] === null ? null : this.keys[slot]!;
  }

  /** DN of a slot from find(); null for a "no such entry" answer. */
  dn(slot: number): string | null {
    const head = this.heads[slot];
    if (head === null || head === undefined) return null;
    const tail = this.tails[slot]!;
    return tail === WHOLE ? head : head + this.tailTexts[tail]!;
  }

  /** The answer of `key` (most recently used from now on), or undefined. */
  get(key: string): CachedAnswer | undefined {
    const slot = this.find(key);
    if (slot === NONE) return undefined;
    return { canonical: this.canonical(slot), dn: this.dn(slot), freshUntil: this.fresh[slot]! };
  }

  /** Stores an answer as the most recently used, dropping the least recently used one when full. */
  set(key: string, entry: { canonical: string; dn: string } | null, freshUntil: number): void {
    let slot = this.index.get(key);
    if (slot === undefined) {
      if (this.index.size >= this.max) {
        // Past their share, unknown answers give way first whatever comes in: a flood that began
        // while the cache had room would otherwise keep that room from the valid answers after it.
        const unknownFirst = this.unknowns > this.unknownShare || (entry === null && this.unknowns === this.unknownShare);
        this.remove(unknownFirst ? this.ulru : this.lru);
        this.onEvict();
      }
      slot = this.freeCount > 0 ? this.free[--this.freeCount]! : this.unused++;
      const k = flat(key);
      this.keys[slot] = k;
      this.index.set(k, slot);
      this.link(slot);
    } else {
      this.touch(slot);
    }
    this.fresh[slot] = freshUntil;
    if (this.unknown[slot] === 1) this.uunlink(slot);
    if (entry === null) {
      this.ulink(slot);
      this.canonicals[slot] = null;
      this.heads[slot] = null;
      this.tails[slot] = WHOLE;
      return;
    }
    this.canonicals[slot] = entry.canonical === key ? undefined : flat(entry.canonical);
    const comma = entry.dn.indexOf(',');
    const tail = comma > 0 ? this.tailId(entry.dn.slice(comma)) : WHOLE;
    this.heads[slot] = flat(tail === WHOLE ? entry.dn : entry.dn.slice(0, comma));
    this.tails[slot] = tail;
  }

  delete(key: string): boolean {
    const slot = this.index.get(key);
    if (slot === undefined) return false;
    this.remove(slot);
    return true;
  }

  clear(): void {
    this.index.clear();
    this.keys.fill(undefined);
    this.canonicals.fill(undefined);
    this.heads.fill(undefined);
    this.lru = this.mru = NONE;
    this.unknown.fill(0);
    this.ulru = this.umru = NONE;
    this.unknowns = 0;
    this.unused = 0;
    this.freeCount = 0;
    this.tailIds.clear();
    this.tailTexts.length = 1;
  }

  /** Drops every "no such entry" answer (they may come from a directory that lost its read rights). */
  deleteNegatives(): number {
    const n = this.unknowns;
    while (this.ulru !== NONE) this.remove(this.ulru);
    return n;
  }

  /** Up to `n` keys with a valid answer, most recently used first, looking at `scan` keys at most. */
  recentPositives(n: number, scan = 10_000): string[] {
    const out: string[] = [];
    for (let s = this.mru, left = scan; s !== NONE && out.length < n && left > 0; s = this.prev[s]!, left--) {
      if (this.canonical(s) !== null) out.push(this.keys[s]!);
    }
    return out;
  }

  /** Keys from least to most recently used (tests, diagnostics). */
  *keysByAge(): Generator<string> {
    for (let s = this.lru; s !== NONE; s = this.next[s]!) yield this.keys[s]!;
  }

  private tailId(tail: string): number {
    const id = this.tailIds.get(tail);
    if (id !== undefined) return id;
    if (this.tailTexts.length > MAX_DN_TAILS) return WHOLE;
    const text = flat(tail);
    this.tailTexts.push(text);
    this.tailIds.set(text, this.tailTexts.length - 1);
    return this.tailTexts.length - 1;
  }

  private remove(slot: number): void {
    this.index.delete(this.keys[slot]!);
    this.unlink(slot);
    if (this.unknown[slot] === 1) this.uunlink(slot);
    this.keys[slot] = undefined;
    this.canonicals[slot] = undefined;
    this.heads[slot] = undefined;
    this.free[this.freeCount++] = slot;
  }

  private touch(slot: number): void {
    if (this.unknown[slot] === 1 && slot !== this.umru) {
      this.uunlink(slot);
      this.ulink(slot);
    }
    if (slot === this.mru) return;
    this.unlink(slot);
    this.link(slot);
  }

  /** Appends `slot` to the unknown answers as most recently used. */
  private ulink(slot: number): void {
    this.unknown[slot] = 1;
    this.unknowns++;
    this.uprev[slot] = this.umru;
    this.unext[slot] = NONE;
    if (this.umru !== NONE) this.unext[this.umru] = slot;
    else this.ulru = slot;
    this.umru = slot;
  }

  private uunlink(slot: number): void {
    this.unknown[slot] = 0;
    this.unknowns--;
    const p = this.uprev[slot]!;
    const n = this.unext[slot]!;
    if (p !== NONE) this.unext[p] = n;
    else this.ulru = n;
    if (n !== NONE) this.uprev[n] = p;
    else this.umru = p;
  }

  /** Appends `slot` as most recently used. */
  private link(slot: number): void {
    this.prev[slot] = this.mru;
    this.next[slot] = NONE;
    if (this.mru !== NONE) this.next[this.mru] = slot;
    else this.lru = slot;
    this.mru = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NONE) this.next[p] = n;
    else this.lru = n;
    if (n !== NONE) this.prev[n] = p;
    else this.mru = p;
  }
}
