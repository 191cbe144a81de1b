/**
 * The snapshot store as it was before the compact store (a Map per address and per DN, one
 * object per entry), kept only as the baseline the snapshot benchmarks compare against.
 */
import { parseAddress } from '../../src/recipient/address.js';
import type { DirectoryRecord } from '../../src/directory/types.js';
import type { SnapshotView } from '../../src/recipient/engine.js';

/** The engine's lookup key for a directory address: lowercased, IDN domain as A-label. */
export function snapshotKey(address: string): string {
  const lower = address.toLowerCase();
  // Fast path for the common case; anything unusual goes through the engine's own parser.
  if (/^[a-z0-9._%+=&'-]+@[a-z0-9.-]+$/.test(lower)) return lower;
  const parsed = parseAddress(address);
  return parsed.ok ? parsed.value.address : lower;
}

/**
 * A full copy of every valid address: address → its entry. Records are shared between the
 * address index and the DN index so an incremental refresh can replace an entry's addresses.
 * An address held by several entries stays valid until the last of them goes.
 */
export class LegacySnapshotStore implements SnapshotView {
  private readonly byAddress = new Map<string, DirectoryRecord>();
  private readonly byDn = new Map<string, DirectoryRecord>();
  /** Addresses held by more than one entry (rare): every holder, so a removal keeps the others. */
  private readonly shared = new Map<string, DirectoryRecord[]>();

  constructor(
    /** When the directory data was read (ms since epoch). */
    public createdAt: number,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  static from(records: Iterable<DirectoryRecord>, createdAt: number, maxAgeMs: number, now?: () => number): LegacySnapshotStore {
    const s = new LegacySnapshotStore(createdAt, maxAgeMs, now);
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

  /** SnapshotView: never supersedes a cached answer (the store of the release before). */
  readonly listedAt = -Infinity;
  hasDn(): boolean {
    return true;
  }

  isFresh(): boolean {
    return this.now() - this.createdAt <= this.maxAgeMs;
  }

  ageSeconds(): number {
    return Math.max(0, Math.round((this.now() - this.createdAt) / 1000));
  }

  /** Adds or replaces an entry (by DN, case-insensitively); addresses it no longer has are dropped. */
  upsert(record: DirectoryRecord): void {
    const key = record.dn.toLowerCase();
    const old = this.byDn.get(key);
    if (old) this.detach(old);
    const rec: DirectoryRecord = { dn: record.dn, canonical: record.canonical, addresses: [...new Set(record.addresses.map(snapshotKey))] };
    this.byDn.set(key, rec);
    for (const a of rec.addresses) this.attach(a, rec);
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

/**
 * The snapshot file of the same release (format 1, JSON lines), written and read the way that
 * release did, for the start-to-ready baseline: the whole file parsed, every entry re-indexed.
 */
export async function writeLegacySnapshot(path: string, source: string, createdAt: number, records: Iterable<DirectoryRecord>): Promise<void> {
  const { createHash } = await import('node:crypto');
  const { writeFile } = await import('node:fs/promises');
  const chunks: string[] = [];
  let entries = 0;
  let addresses = 0;
  for (const r of records) {
    chunks.push(JSON.stringify([r.dn, r.canonical, r.addresses]) + '\n');
    entries++;
    addresses += r.addresses.length;
  }
  const body = Buffer.from(chunks.join(''), 'utf8');
  const header = { createdAt, fullAt: createdAt, source, entries, addresses, sha256: createHash('sha256').update(body).digest('hex') };
  await writeFile(path, Buffer.concat([Buffer.from(`rcptgate-snapshot 1\n${JSON.stringify(header)}\n`), body]), { mode: 0o600 });
}

export async function readLegacySnapshot(path: string, maxAgeMs: number): Promise<LegacySnapshotStore> {
  const { readFile } = await import('node:fs/promises');
  const { readV1Body } = await import('../../src/snapshot/file-v1.js');
  const buf = await readFile(path);
  const nl1 = buf.indexOf(0x0a);
  const nl2 = buf.indexOf(0x0a, nl1 + 1);
  const header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as { createdAt: number; sha256: string; entries: number };
  return LegacySnapshotStore.from(readV1Body(buf.subarray(nl2 + 1), header.sha256, header.entries), header.createdAt, maxAgeMs);
}
