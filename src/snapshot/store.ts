import { addressKey } from '../recipient/address.js';
import type { DirectoryRecord } from '../directory/types.js';
import type { SnapshotView } from './view.js';

/** The engine's lookup key for a directory address (address.ts owns normalization). */
export const snapshotKey = addressKey;

/**
 * A full copy of every valid address: address → its entry. Records are shared between the
 * address index and the DN index so an incremental refresh can replace an entry's addresses.
 * An address held by several entries stays valid until the last of them goes.
 */
export class SnapshotStore implements SnapshotView {
  private readonly byAddress = new Map<string, DirectoryRecord>();
  private readonly byDn = new Map<string, DirectoryRecord>();
  /** Addresses held by more than one entry (rare): every holder, so a removal keeps the others. */
  private readonly shared = new Map<string, DirectoryRecord[]>();

  constructor(
    /** When the last full sync started (ms since epoch): `sync.maxAge` counts from here. */
    public createdAt: number,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  static from(records: Iterable<DirectoryRecord>, createdAt: number, maxAgeMs: number, now?: () => number): SnapshotStore {
    const s = new SnapshotStore(createdAt, maxAgeMs, now);
    for (const r of records) s.upsert(r);
    return s;
  }

  /** Distinct addresses. */
  get size(): number {
    return this.byAddress.size;
  }

  /** Directory entries (DNs). */
  get entries(): number {
    return this.byDn.size;
  }

  /** Canonical address for a normalized address (as the engine passes it), or undefined. */
  get(address: string): string | undefined {
    return this.byAddress.get(address)?.canonical;
  }

  isFresh(): boolean {
    return this.now() - this.createdAt <= this.maxAgeMs;
  }

  ageSeconds(): number {
    return Math.max(0, Math.round((this.now() - this.createdAt) / 1000));
  }

  /**
   * Adds or replaces an entry (by DN, case-insensitively); addresses it no longer has are dropped.
   * Returns false when the entry was already there unchanged (nothing to write).
   */
  upsert(record: DirectoryRecord): boolean {
    const key = record.dn.toLowerCase();
    const old = this.byDn.get(key);
    const rec: DirectoryRecord = { dn: record.dn, canonical: record.canonical, addresses: [...new Set(record.addresses.map(snapshotKey))] };
    if (old && old.dn === rec.dn && old.canonical === rec.canonical && old.addresses.length === rec.addresses.length && old.addresses.every((a, i) => a === rec.addresses[i])) return false;
    if (old) this.detach(old);
    this.byDn.set(key, rec);
    for (const a of rec.addresses) this.attach(a, rec);
    return true;
  }

  remove(dn: string): boolean {
    const key = dn.toLowerCase();
    const old = this.byDn.get(key);
    if (!old) return false;
    this.detach(old);
    this.byDn.delete(key);
    return true;
  }

  *records(): IterableIterator<DirectoryRecord> {
    yield* this.byDn.values();
  }

  private attach(address: string, rec: DirectoryRecord): void {
    const current = this.byAddress.get(address);
    if (!current) {
      this.byAddress.set(address, rec);
      return;
    }
    const holders = this.shared.get(address) ?? [current];
    holders.push(rec);
    this.shared.set(address, holders);
    this.byAddress.set(address, preferred(address, holders));
  }

  private detach(rec: DirectoryRecord): void {
    for (const a of rec.addresses) {
      const holders = this.shared.get(a);
      if (!holders) {
        if (this.byAddress.get(a) === rec) this.byAddress.delete(a);
        continue;
      }
      const rest = holders.filter((h) => h !== rec);
      if (rest.length <= 1) this.shared.delete(a);
      else this.shared.set(a, rest);
      if (rest.length === 0) this.byAddress.delete(a);
      else this.byAddress.set(a, preferred(a, rest));
    }
  }
}

/** Same choice as a live lookup: the entry whose primary address is the one asked for, then the lowest DN. */
function preferred(address: string, holders: DirectoryRecord[]): DirectoryRecord {
  const rank = (r: DirectoryRecord) => (snapshotKey(r.canonical) === address ? 0 : 1);
  return [...holders].sort((x, y) => rank(x) - rank(y) || (x.dn.toLowerCase() < y.dn.toLowerCase() ? -1 : x.dn.toLowerCase() > y.dn.toLowerCase() ? 1 : 0))[0]!;
}
