import { randomBytes } from 'node:crypto';
import { addressKey } from '../recipient/address.js';
import type { DirectoryRecord } from '../directory/types.js';
import type { SnapshotView } from './view.js';
import { HEAD, RecordArena } from './arena.js';
import { adoptIndex, HashIndex, hashBytes, isKnown, settleGrowth } from './table.js';

/** The engine's lookup key for a directory address (address.ts owns normalization). */
export const snapshotKey = addressKey;

/** Entry id with no record (free). */
const NONE = 0xffffffff;

/** What a snapshot file holds of a store: raw arrays, read back without per-entry parsing. */
export interface StoreImage {
  chunks: Buffer[];
  offsets: Uint32Array; // entry id → record offset (NONE: free id)
  byAddress: Uint32Array; // [hash, record offset + 1] pairs
  byDn: Uint32Array; // [hash, entry id + 1] pairs
  parents: string[];
  /** Addresses held by several entries: every holder's id. */
  shared: Array<[string, number[]]>;
  /** The seed both indexes were hashed with (FIXED_SEED in files written before seeds). */
  seed: number;
}

/**
 * Every valid address: records in a byte arena, an open-addressing index from address to record
 * offset (a lookup touches two places in memory), another from lowercased DN to entry id. About
 * 80 bytes per address; files hold the whole arrays. A refresh replaces an entry's addresses by
 * DN; an address held by several entries stays until the last one goes.
 */
export class SnapshotStore implements SnapshotView {
  private arena = new RecordArena();
  private offsets: Uint32Array = new Uint32Array(1024).fill(NONE);
  /** Ids handed out so far (live or free). */
  private idCount = 0;
  private free: number[] = [];
  listedAt = -Infinity; // SnapshotView; set by the syncer
  private byAddress = new HashIndex();
  private byDn = new HashIndex();
  private shared = new Map<string, number[]>();
  /** The key being looked up, as UTF-8 (grown for long keys). */
  private key = Buffer.allocUnsafe(1024);
  /** Hash seed of both indexes: drawn per store, so no one can craft addresses that collide (table.ts). */
  private seed = randomBytes(4).readUInt32LE(0);

  constructor(
    /** When the last full sync started, on the `now` clock (the syncer's steady clock): `sync.maxAge` counts from here. */
    public createdAt: number,
    public maxAgeMs: number, // sync.maxAge; a reload may change it
    private readonly now: () => number = Date.now,
  ) {}

  static from(records: Iterable<DirectoryRecord>, createdAt: number, maxAgeMs: number, now?: () => number): SnapshotStore {
    const s = new SnapshotStore(createdAt, maxAgeMs, now);
    for (const r of records) s.upsert(r);
    return s;
  }

  /** Completes index growth in progress, lookups let through (before it is published or written). */
  settle(): Promise<void> {
    return settleGrowth([this.byAddress, this.byDn]);
  }

  /** A store over arrays read from a file; throws when they do not hold together. */
  static fromImage(image: StoreImage, createdAt: number, maxAgeMs: number, now?: () => number): SnapshotStore {
    const s = new SnapshotStore(createdAt, maxAgeMs, now);
    s.seed = image.seed;
    s.arena = RecordArena.of(image.chunks, image.parents);
    s.offsets = image.offsets;
    s.idCount = image.offsets.length;
    // Bounds only, in closure-free loops over the arrays (the checksum already vouches for the
    // bytes, and walking a million records would double the time to ready): no index points
    // outside the data, and a record that runs past its chunk only reads as a miss.
    const ends = new Int32Array(256).fill(-1);
    image.chunks.forEach((c, i) => (ends[i] = c.length - HEAD));
    const live = new Uint32Array((s.idCount + 31) >>> 5);
    const offsets = image.offsets;
    for (let id = 0; id < s.idCount; id++) {
      const off = offsets[id]!;
      if (off === NONE) s.free.push(id);
      else if ((off & 0xffffff) > ends[off >>> 24]!) throw new Error(`entry ${id} lies outside the data`);
      else live[id >>> 5]! |= 1 << (id & 31);
    }
    s.byAddress = adoptIndex(image.byAddress, 'address', { ends });
    // A bitset of live ids, not the offsets: 1/32 of the memory, so these checks stay in cache.
    s.byDn = adoptIndex(image.byDn, 'DN', { live });
    if (s.byDn.count !== s.idCount - s.free.length) throw new Error('the DN index does not match the entries');
    for (const [address, ids] of image.shared) {
      if (!ids.every((id) => isKnown({ live }, id))) throw new Error('an address shared by several entries names an unknown entry');
      s.shared.set(address, ids);
    }
    return s;
  }

  image(): StoreImage {
    return {
      chunks: this.arena.usedChunks(),
      offsets: this.offsets.subarray(0, this.idCount),
      byAddress: this.byAddress.slots,
      byDn: this.byDn.slots,
      parents: this.arena.parents,
      shared: [...this.shared],
      seed: this.seed,
    };
  }

  /** Distinct addresses; directory entries (DNs). */
  get size(): number {
    return this.byAddress.count;
  }
  get entries(): number {
    return this.byDn.count;
  }

  /** Canonical address for a normalized address (as the engine passes it), or undefined. */
  get(address: string): string | undefined {
    const n = this.encode(address);
    const key = this.key;
    const h = hashBytes(key, 0, n, this.seed);
    const t = this.byAddress;
    const s = t.slots;
    for (let i = t.home(h); ; i = t.next(i)) {
      const v = s[i * 2 + 1]!;
      if (v === 0) return undefined;
      if (s[i * 2] !== h) continue;
      const at = this.arena.findAddress(v - 1, key, n);
      // Usually the primary address is the one asked for: the key itself, no decoding.
      if (at >= 0) return this.arena.canonicalIndex(v - 1) === at ? address : this.arena.canonical(v - 1);
    }
  }

  isFresh(): boolean {
    return this.now() - this.createdAt <= this.maxAgeMs;
  }

  ageSeconds(): number {
    return Math.max(0, Math.round((this.now() - this.createdAt) / 1000));
  }

  /** Adds or replaces an entry (by DN, any case), dropping addresses it lost; false if unchanged. */
  upsert(record: DirectoryRecord): boolean {
    const addresses = record.addresses.length === 1 ? [snapshotKey(record.addresses[0]!)] : [...new Set(record.addresses.map(snapshotKey))];
    const dnKey = record.dn.toLowerCase();
    const dnHash = this.hashOf(dnKey);
    let id = this.dnSlot(dnKey, dnHash);
    if (id >= 0) {
      id = this.byDn.value(id);
      if (this.holds(id, record, addresses)) return false;
      this.detach(id);
    } else {
      id = this.newId();
      this.byDn.insert(dnHash, id);
    }
    this.offsets[id] = this.arena.write({ dn: record.dn, canonical: record.canonical, addresses }, id);
    for (const a of addresses) this.attach(a, id);
    this.maybeCompact();
    return true;
  }

  /** Whether entry `id` already is exactly this record (same DN spelling, primary address, addresses). */
  private holds(id: number, record: DirectoryRecord, addresses: string[]): boolean {
    const off = this.offsets[id]!;
    if (this.arena.dn(off) !== record.dn || this.arena.canonical(off) !== record.canonical) return false;
    const old = this.arena.addresses(off);
    return old.length === addresses.length && old.every((a, i) => a === addresses[i]);
  }

  remove(dn: string): boolean {
    const dnKey = dn.toLowerCase();
    const slot = this.dnSlot(dnKey, this.hashOf(dnKey));
    if (slot < 0) return false;
    const id = this.byDn.value(slot);
    this.detach(id);
    this.byDn.removeAt(slot);
    this.offsets[id] = NONE;
    this.free.push(id);
    this.maybeCompact();
    return true;
  }

  /** Whether an entry with this DN (compared case-insensitively) is held. */
  hasDn(dn: string): boolean {
    const key = dn.toLowerCase();
    return this.dnSlot(key, this.hashOf(key)) >= 0;
  }

  /** DNs of the entries holding an address (normally one; several for a shared address). */
  holders(address: string): string[] {
    const key = snapshotKey(address);
    const ids = this.shared.get(key);
    if (ids) return ids.map((id) => this.arena.dn(this.offsets[id]!));
    const slot = this.addressSlot(key);
    return slot < 0 ? [] : [this.arena.dn(this.byAddress.value(slot))];
  }

  *records(): IterableIterator<DirectoryRecord> {
    for (let id = 0; id < this.idCount; id++) if (this.offsets[id] !== NONE) yield this.record(id);
  }

  private record(id: number): DirectoryRecord {
    const off = this.offsets[id]!;
    return { dn: this.arena.dn(off), canonical: this.arena.canonical(off), addresses: this.arena.addresses(off) };
  }

  /** UTF-8 bytes of `s` into this.key; returns their length. */
  private encode(s: string): number {
    if (s.length * 3 > this.key.length) this.key = Buffer.allocUnsafe(s.length * 3);
    const key = this.key;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return key.write(s, 0, 'utf8');
      key[i] = c;
    }
    return s.length;
  }

  private hashOf = (s: string): number => hashBytes(this.key, 0, this.encode(s), this.seed);

  /** Slot in the DN index of the entry with this lowercased DN, or -1. */
  private dnSlot(dnKey: string, hash: number): number {
    const t = this.byDn;
    for (let i = t.home(hash); ; i = t.next(i)) {
      const v = t.slots[i * 2 + 1]!;
      if (v === 0) return -1;
      if (t.slots[i * 2] === hash && this.arena.dn(this.offsets[v - 1]!).toLowerCase() === dnKey) return i;
    }
  }

  /** Slot in the address index holding this address, or -1 (this.key holds it after the call). */
  private addressSlot(address: string): number {
    const n = this.encode(address);
    const h = hashBytes(this.key, 0, n, this.seed);
    const t = this.byAddress;
    for (let i = t.home(h); ; i = t.next(i)) {
      const v = t.slots[i * 2 + 1]!;
      if (v === 0) return -1;
      if (t.slots[i * 2] === h && this.arena.findAddress(v - 1, this.key, n) >= 0) return i;
    }
  }

  private newId(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.idCount === this.offsets.length) {
      const grown = new Uint32Array(Math.max(1024, this.offsets.length * 2)).fill(NONE);
      grown.set(this.offsets);
      this.offsets = grown;
    }
    return this.idCount++;
  }

  private attach(address: string, id: number): void {
    const slot = this.addressSlot(address);
    if (slot < 0) {
      this.byAddress.insert(hashBytes(this.key, 0, this.encode(address), this.seed), this.offsets[id]!);
      return;
    }
    const holders = this.shared.get(address) ?? [RecordArena.idAt(this.arena.chunks, this.byAddress.value(slot))];
    holders.push(id);
    this.shared.set(address, holders);
    this.byAddress.set(slot, this.offsets[this.preferred(address, holders)]!);
  }

  /** Takes an entry's addresses out of the address index; its record becomes garbage. */
  private detach(id: number): void {
    const off = this.offsets[id]!;
    for (const a of this.arena.addresses(off)) {
      const slot = this.addressSlot(a);
      const holders = this.shared.get(a);
      if (!holders) {
        if (slot >= 0 && this.byAddress.value(slot) === off) this.byAddress.removeAt(slot);
        continue;
      }
      const rest = holders.filter((h) => h !== id);
      if (rest.length <= 1) this.shared.delete(a);
      else this.shared.set(a, rest);
      if (slot < 0) continue;
      if (rest.length === 0) this.byAddress.removeAt(slot);
      else this.byAddress.set(slot, this.offsets[this.preferred(a, rest)]!);
    }
    this.arena.release(off);
  }

  /** Same choice as a live lookup: the entry whose primary address is the one asked for, then the lowest DN. */
  private preferred(address: string, holders: number[]): number {
    const keyed = holders.map((id) => {
      const off = this.offsets[id]!;
      return { id, rank: snapshotKey(this.arena.canonical(off)) === address ? 0 : 1, dn: this.arena.dn(off).toLowerCase() };
    });
    keyed.sort((x, y) => x.rank - y.rank || (x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0));
    return keyed[0]!.id;
  }

  /** Replaced records are garbage; copy the live ones once garbage outweighs them. */
  private maybeCompact(): void {
    const g = this.arena.garbage;
    if (g <= 1 << 20 || g * 2 <= this.arena.bytes) return;
    const old = this.arena.compact(this.offsets, this.idCount, NONE);
    // The address index holds record offsets: move each to where its entry's record went.
    this.byAddress.finishGrowth();
    const s = this.byAddress.slots;
    for (let i = 1; i < s.length; i += 2) if (s[i] !== 0) s[i] = this.offsets[RecordArena.idAt(old, s[i]! - 1)]! + 1;
  }
}
