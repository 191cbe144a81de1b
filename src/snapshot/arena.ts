/**
 * The bytes of the compact snapshot store: every entry (DN, primary address, addresses) as one
 * self-contained record in a few large Buffers, outside the V8 heap and free of per-entry
 * objects. A record's offset is `chunk << 24 | position`. Record layout (little-endian):
 *   u16 address count, u16 RDN length, u32 parent DN id (0xffffffff: none),
 *   u8 index of the address equal to the primary address (0xff: stored after the addresses),
 *   u16 primary address length (0 when indexed), u32 entry id, then per address u16 length +
 *   UTF-8 bytes (normalized, as the engine looks them up), [primary address], RDN.
 * Addresses come first so that a lookup touches the start of the record only.
 * DNs are split at their first unescaped comma and the parent part is interned: the few
 * distinct parents (`ou=people,dc=example,dc=com`) are stored once.
 */
const CHUNK_MAX = 1 << 24;
const FIRST_CHUNK = 1 << 16;
const MAX_CHUNKS = 256;
/** Bytes of a record before its first address. */
export const HEAD = 15;
const NO_PARENT = 0xffffffff;
const LITERAL = 0xff;

export interface ArenaRecord {
  dn: string;
  canonical: string;
  /** Normalized and distinct. */
  addresses: string[];
}

/** Splits a DN at its first unescaped comma: [rdn, parent | null]. */
function splitDn(dn: string): [string, string | null] {
  for (let i = 0; i < dn.length; i++) {
    const c = dn.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x2c) return [dn.slice(0, i), dn.slice(i + 1)];
  }
  return [dn, null];
}

function fits16(n: number, what: string): number {
  if (n > 0xffff) throw new Error(`snapshot entry too large: ${what} has ${n} bytes or items (at most 65535)`);
  return n;
}

/** UTF-8 length; the loop spares a native call for the usual ASCII string. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Writes `s` (of `len` UTF-8 bytes) at `p`; returns the position after it. */
function putString(b: Buffer, p: number, s: string, len: number): number {
  if (len !== s.length) return p + b.write(s, p, len, 'utf8');
  for (let i = 0; i < len; i++) b[p + i] = s.charCodeAt(i);
  return p + len;
}

export class RecordArena {
  chunks: Buffer[] = [];
  /** Bytes used in the last chunk (a chunk read from a file is full). */
  private tail = 0;
  /** Bytes of records replaced or removed since the last compaction. */
  garbage = 0;
  parents: string[] = [];
  private readonly parentIds = new Map<string, number>();

  /** Adopts chunks and parents read from a snapshot file. */
  static of(chunks: Buffer[], parents: string[]): RecordArena {
    const a = new RecordArena();
    a.chunks = chunks;
    a.tail = chunks.at(-1)?.length ?? 0;
    a.parents = parents;
    parents.forEach((p, i) => a.parentIds.set(p, i));
    return a;
  }

  /** Bytes in use, garbage included. */
  get bytes(): number {
    return this.chunks.reduce((n, c, i) => n + (i === this.chunks.length - 1 ? this.tail : c.length), 0);
  }

  /** The used part of each chunk, for writing a file. */
  usedChunks(): Buffer[] {
    return this.chunks.map((c, i) => (i === this.chunks.length - 1 ? c.subarray(0, this.tail) : c));
  }

  write(rec: ArenaRecord, id: number): number {
    const [rdn, parent] = splitDn(rec.dn);
    let parentId = NO_PARENT;
    if (parent !== null) {
      parentId = this.parentIds.get(parent) ?? this.parents.push(parent) - 1;
      this.parentIds.set(parent, parentId);
    }
    const list = rec.addresses;
    const at = list.indexOf(rec.canonical);
    const index = at >= 0 && at < LITERAL ? at : LITERAL;
    const rdnLen = fits16(utf8Length(rdn), 'DN');
    const canonLen = index === LITERAL ? fits16(utf8Length(rec.canonical), 'primary address') : 0;
    let size = HEAD + rdnLen + canonLen;
    for (const a of list) size += 2 + fits16(utf8Length(a), 'address');
    const off = this.alloc(size);
    const b = this.chunks[off >>> 24]!;
    let p = off & 0xffffff;
    const count = fits16(list.length, 'address list');
    b[p] = count & 0xff;
    b[p + 1] = count >>> 8;
    b[p + 2] = rdnLen & 0xff;
    b[p + 3] = rdnLen >>> 8;
    b.writeUInt32LE(parentId, p + 4);
    b[p + 8] = index;
    b[p + 9] = canonLen & 0xff;
    b[p + 10] = canonLen >>> 8;
    b.writeUInt32LE(id, p + 11);
    p += HEAD;
    for (const a of list) {
      const len = utf8Length(a);
      b[p] = len & 0xff;
      b[p + 1] = len >>> 8;
      p = putString(b, p + 2, a, len);
    }
    if (index === LITERAL) p = putString(b, p, rec.canonical, canonLen);
    putString(b, p, rdn, rdnLen);
    return off;
  }

  private alloc(size: number): number {
    let last = this.chunks.at(-1);
    if (!last || this.tail + size > last.length) {
      if (this.chunks.length >= MAX_CHUNKS) throw new Error('snapshot larger than 4 GiB of records');
      const grown = Math.min(CHUNK_MAX, Math.max(FIRST_CHUNK, (last?.length ?? 0) * 2, size));
      last = Buffer.allocUnsafe(grown);
      this.chunks.push(last);
      this.tail = 0;
    }
    const off = ((this.chunks.length - 1) * CHUNK_MAX + this.tail) >>> 0;
    this.tail += size;
    return off;
  }

  /** Position just after the last address of a record. */
  private addressEnd(b: Buffer, p: number): number {
    let q = p + HEAD;
    for (let i = b[p]! | (b[p + 1]! << 8); i > 0; i--) q += 2 + (b[q]! | (b[q + 1]! << 8));
    return q;
  }

  /** The entry id stored in the record at `off` of `chunks`. */
  static idAt(chunks: Buffer[], off: number): number {
    return chunks[off >>> 24]!.readUInt32LE((off & 0xffffff) + 11);
  }

  /** Index of the address equal to key[0, n) in the record, or -1. */
  findAddress(off: number, key: Uint8Array, n: number): number {
    const b = this.chunks[off >>> 24]!;
    const p = off & 0xffffff;
    const count = b[p]! | (b[p + 1]! << 8);
    let q = p + HEAD;
    for (let i = 0; i < count; i++) {
      const len = b[q]! | (b[q + 1]! << 8);
      q += 2;
      if (len === n) {
        let j = 0;
        while (j < n && b[q + j] === key[j]) j++;
        if (j === n) return i;
      }
      q += len;
    }
    return -1;
  }

  /** Index of the address that is also the primary address (255: none is). */
  canonicalIndex(off: number): number {
    return this.chunks[off >>> 24]![(off & 0xffffff) + 8]!;
  }

  /** The record's primary address. */
  canonical(off: number): string {
    const b = this.chunks[off >>> 24]!;
    const p = off & 0xffffff;
    const index = b[p + 8]!;
    if (index === LITERAL) {
      const start = this.addressEnd(b, p);
      return b.toString('utf8', start, start + (b[p + 9]! | (b[p + 10]! << 8)));
    }
    let q = p + HEAD;
    for (let i = 0; i < index; i++) q += 2 + (b[q]! | (b[q + 1]! << 8));
    return b.toString('utf8', q + 2, q + 2 + (b[q]! | (b[q + 1]! << 8)));
  }

  addresses(off: number): string[] {
    const b = this.chunks[off >>> 24]!;
    const p = off & 0xffffff;
    const out: string[] = [];
    let q = p + HEAD;
    for (let i = b[p]! | (b[p + 1]! << 8); i > 0; i--) {
      const len = b[q]! | (b[q + 1]! << 8);
      out.push(b.toString('utf8', q + 2, q + 2 + len));
      q += 2 + len;
    }
    return out;
  }

  dn(off: number): string {
    const b = this.chunks[off >>> 24]!;
    const p = off & 0xffffff;
    const start = this.addressEnd(b, p) + (b[p + 9]! | (b[p + 10]! << 8));
    const rdn = b.toString('utf8', start, start + (b[p + 2]! | (b[p + 3]! << 8)));
    const parent = b.readUInt32LE(p + 4);
    return parent === NO_PARENT ? rdn : `${rdn},${this.parents[parent]}`;
  }

  /** Size of the record at `off`, or -1 when it runs past its chunk or names no known parent. */
  size(off: number): number {
    const b = this.chunks[off >>> 24];
    const p = off & 0xffffff;
    if (!b || p + HEAD > b.length) return -1;
    const parent = b.readUInt32LE(p + 4);
    if (parent !== NO_PARENT && parent >= this.parents.length) return -1;
    const count = b[p]! | (b[p + 1]! << 8);
    if (b[p + 8] !== LITERAL && b[p + 8]! >= count) return -1;
    let q = p + HEAD;
    for (let i = 0; i < count && q + 2 <= b.length; i++) q += 2 + (b[q]! | (b[q + 1]! << 8));
    q += (b[p + 9]! | (b[p + 10]! << 8)) + (b[p + 2]! | (b[p + 3]! << 8));
    return q > b.length ? -1 : q - p;
  }

  release(off: number): void {
    this.garbage += this.size(off);
  }

  /**
   * Copies live records into fresh chunks; `offsets` (NONE for free ids) is updated in place.
   * Returns the old chunks, so the caller can map old offsets through the ids they hold.
   */
  compact(offsets: Uint32Array, count: number, none: number): Buffer[] {
    const old = this.chunks;
    this.chunks = [];
    this.tail = 0;
    for (let id = 0; id < count; id++) {
      const off = offsets[id]!;
      if (off === none) continue;
      const b = old[off >>> 24]!;
      const p = off & 0xffffff;
      const size = this.sizeIn(b, p);
      const to = this.alloc(size);
      b.copy(this.chunks[to >>> 24]!, to & 0xffffff, p, p + size);
      offsets[id] = to;
    }
    this.garbage = 0;
    return old;
  }

  private sizeIn(b: Buffer, p: number): number {
    return this.addressEnd(b, p) + (b[p + 9]! | (b[p + 10]! << 8)) + (b[p + 2]! | (b[p + 3]! << 8)) - p;
  }
}
