import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { crc32 } from 'node:zlib';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DirectoryRecord } from '../directory/types.js';
import { ErrorCodes, RcptgateError } from '../errors.js';
import { readV1Body, SNAPSHOT_MAGIC_V1 } from './file-v1.js';
import { sameSource } from './source.js';
import { SnapshotStore, type StoreImage } from './store.js';
import { openRegularFile, writeFileAtomically } from './atomic-file.js';
import { rekey, SNAPSHOT_KEYS } from './rekey.js';
import { FIXED_SEED } from './table.js';

/**
 * Snapshot file format, version 4: the compact store's arrays as they are in memory, so a
 * restart reads a few large sections instead of parsing every entry or rebuilding an index.
 *   line 1: `rcptgate-snapshot 4`
 *   line 2: JSON header {createdAt, fullAt, source, entries, addresses, hashSeed, crc32, layout}
 *   then the sections named by `layout` (byte lengths): meta (JSON: parents, shared),
 *   offsets, byAddress, byDn (little-endian uint32 arrays), then the record chunks.
 * `crc32` holds one CRC-32 per section, in that order: it refuses a corrupt or truncated file
 * like a cryptographic hash would (the file is not signed either way), at a fraction of the
 * cost, and each section is checked as soon as it is read. `source` identifies the directory
 * (base DN, scope, filter, preset; not the URLs, which replicas share) so a file written for
 * another tree or filter is refused. Written to a temp file, fsynced, then renamed: a reader
 * sees the old file or the new one, never a torn one.
 * `hashSeed` is the seed the indexes were hashed with (table.ts): a new number, so the version
 * changed and a release that would hash with the fixed seed, miss every address and answer
 * unknown refuses the file instead. Version 3 (hashed with the fixed seed), version 2 (the same
 * sections under one SHA-256) and version 1 (JSON lines) are still read, so an upgrade keeps its
 * snapshot; a version this release does not know is refused.
 */
export const SNAPSHOT_MAGIC = 'rcptgate-snapshot 4';
const SNAPSHOT_MAGIC_V2 = 'rcptgate-snapshot 2';
const SNAPSHOT_MAGIC_V3 = 'rcptgate-snapshot 3';
const KNOWN = [SNAPSHOT_MAGIC_V1, SNAPSHOT_MAGIC_V2, SNAPSHOT_MAGIC_V3, SNAPSHOT_MAGIC];

export interface SnapshotHeader {
  /** When the data was last read from the directory (full or incremental sync), ms since epoch. */
  createdAt: number;
  /** When the last full sync started (deletions are only seen by full syncs). */
  fullAt: number;
  source: string;
  entries: number;
  addresses: number;
  /** Versions 3 and 4: CRC-32 of each section. */
  crc32?: number[];
  /** Version 4: the seed of the indexes' hash (versions 2 and 3 used FIXED_SEED). */
  hashSeed?: number;
  /** Versions 1 and 2: SHA-256 of the body. */
  sha256?: string;
  /** The base entry's identifier when the listing was taken (identity.ts); absent in older files. */
  directoryId?: string;
  /** How the address keys were made (rekey.ts); absent in files keyed by an older folding. */
  keys?: number;
}

interface Layout {
  meta: number;
  offsets: number;
  byAddress: number;
  byDn: number;
  chunks: number[];
}

export interface SnapshotContents {
  header: SnapshotHeader;
  records: DirectoryRecord[];
}

function invalid(path: string, why: string): RcptgateError {
  return new RcptgateError(ErrorCodes.SNAPSHOT_INVALID, `snapshot ${path} rejected: ${why}`);
}

function bytesOf(a: Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes a store (or builds one from records) as a version-4 snapshot file, atomically. */
export async function writeSnapshot(
  path: string,
  source: string,
  createdAt: number,
  data: SnapshotStore | Iterable<DirectoryRecord>,
  fullAt = createdAt,
  directoryId: string | null = null,
): Promise<SnapshotHeader> {
  if (endianness() !== 'LE') throw new Error('snapshot files are written on little-endian machines only');
  const store = data instanceof SnapshotStore ? data : SnapshotStore.from(data, createdAt, Infinity);
  const image = store.image();
  const meta = Buffer.from(JSON.stringify({ parents: image.parents, shared: image.shared }), 'utf8');
  const sections = [meta, bytesOf(image.offsets), bytesOf(image.byAddress), bytesOf(image.byDn), ...image.chunks];
  const layout: Layout = { meta: meta.length, offsets: sections[1]!.length, byAddress: sections[2]!.length, byDn: sections[3]!.length, chunks: image.chunks.map((c) => c.length) };
  const header: SnapshotHeader = {
    createdAt,
    fullAt,
    source,
    entries: store.entries,
    addresses: store.size,
    hashSeed: image.seed,
    crc32: await checksums(sections),
    keys: SNAPSHOT_KEYS,
    ...(directoryId ? { directoryId } : {}),
  };
  await writeFileAtomically(path, `${SNAPSHOT_MAGIC}\n${JSON.stringify({ ...header, layout })}\n`, sections);
  return header;
}

/**
 * CRC-32 of each section, 16 MB at a time with lookups let through in between: the index of
 * 10 million addresses alone is over 200 MB, a stall of its own when summed in one call.
 */
async function checksums(sections: Uint8Array[]): Promise<number[]> {
  const step = 1 << 24;
  const out: number[] = [];
  for (const b of sections) {
    let crc = 0;
    for (let at = 0; at < b.length || at === 0; at += step) {
      crc = crc32(b.subarray(at, at + step), crc);
      await nextTurn();
    }
    out.push(crc);
  }
  return out;
}

/** Reads and verifies a snapshot into a store; throws SNAPSHOT_INVALID with the reason for anything wrong. */
export async function readSnapshotStore(path: string, expectedSource: string, maxAgeMs: number, now?: () => number): Promise<{ header: SnapshotHeader; store: SnapshotStore }> {
  let fh: FileHandle;
  try {
    fh = await openRegularFile(path);
  } catch (err) {
    throw invalid(path, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read it (${(err as Error).message})`);
  }
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 1 << 20));
    try {
      await fh.read(head, 0, head.length, 0);
    } catch (err) {
      throw invalid(path, `cannot read it (${(err as Error).message})`);
    }
    const nl1 = head.indexOf(0x0a);
    const nl2 = nl1 < 0 ? -1 : head.indexOf(0x0a, nl1 + 1);
    const magic = head.subarray(0, Math.max(0, nl1)).toString('utf8');
    if (nl1 >= 0 && /^rcptgate-snapshot \d+$/.test(magic) && !KNOWN.includes(magic)) {
      throw invalid(path, `format version ${magic.slice(18)} is not one this release reads (1 to 4): written by a newer release?`);
    }
    if (nl1 < 0 || nl2 < 0 || !KNOWN.includes(magic)) throw invalid(path, 'not an rcptgate snapshot (version 1 to 4)');
    const version = KNOWN.indexOf(magic) + 1;
    const header = parseHeader(path, head.subarray(nl1 + 1, nl2), version);
    if (!sameSource(header.source, expectedSource)) throw invalid(path, `written for another directory (${header.source})`);
    if (version === 1) {
      const body = (await fh.readFile()).subarray(nl2 + 1);
      const store = new SnapshotStore(header.createdAt, maxAgeMs, now);
      try {
        readV1Body(body, header.sha256!, header.entries, (r) => store.upsert(r));
      } catch (err) {
        throw invalid(path, (err as Error).message);
      }
      return { header, store };
    }
    const image = await readImage(path, fh, nl2 + 1, size, header);
    let store: SnapshotStore;
    try {
      store = SnapshotStore.fromImage(image, header.createdAt, maxAgeMs, now);
    } catch (err) {
      throw invalid(path, `inconsistent contents (${(err as Error).message})`);
    }
    if (store.entries !== header.entries || store.size !== header.addresses) throw invalid(path, `expected ${header.entries} entries and ${header.addresses} addresses, found ${store.entries} and ${store.size}`);
    if (header.keys !== SNAPSHOT_KEYS) rekey(store);
    return { header, store };
  } finally {
    await fh.close();
  }
}

/** Reads and verifies a snapshot into plain records (tools and tests). */
export async function readSnapshot(path: string, expectedSource: string): Promise<SnapshotContents> {
  const { header, store } = await readSnapshotStore(path, expectedSource, Infinity);
  return { header, records: [...store.records()] };
}

const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isCrc = (v: unknown): v is number => isCount(v) && v <= 0xffffffff;

function parseHeader(path: string, line: Buffer, version: number): SnapshotHeader & { layout: Layout } {
  let header: SnapshotHeader & { layout: Layout };
  try {
    header = JSON.parse(line.toString('utf8')) as SnapshotHeader & { layout: Layout };
  } catch {
    throw invalid(path, 'unreadable header');
  }
  if (header === null || typeof header !== 'object' || typeof header.createdAt !== 'number' || typeof header.source !== 'string' || !isCount(header.entries)) {
    throw invalid(path, 'incomplete header');
  }
  if (version < 3 ? typeof header.sha256 !== 'string' : !Array.isArray(header.crc32)) throw invalid(path, 'incomplete header');
  if (typeof header.fullAt !== 'number') header.fullAt = header.createdAt;
  if (header.directoryId !== undefined && typeof header.directoryId !== 'string') throw invalid(path, 'incomplete header');
  if (version < 4) delete header.hashSeed; // hashed with FIXED_SEED, whatever a header says
  if (version === 1) return header;
  const l = header.layout;
  const ok =
    isCount(header.addresses) &&
    l !== null &&
    typeof l === 'object' &&
    [l.meta, l.offsets, l.byAddress, l.byDn].every(isCount) &&
    l.offsets % 4 === 0 &&
    l.byAddress % 8 === 0 &&
    l.byDn % 8 === 0 &&
    Array.isArray(l.chunks) &&
    l.chunks.length <= 256 &&
    l.chunks.every((c) => isCount(c) && c <= 1 << 24) &&
    (version === 2 || (header.crc32!.length === 4 + l.chunks.length && header.crc32!.every(isCrc))) &&
    (version < 4 || isCrc(header.hashSeed));
  if (!ok) throw invalid(path, 'incomplete header');
  return header;
}

/**
 * Reads the sections named by the header into their own arrays (no copy) and checks them:
 * versions 3 and 4 section by section, each CRC computed while the next section is being read;
 * version 2 under one SHA-256.
 */
async function readImage(path: string, fh: FileHandle, start: number, size: number, header: SnapshotHeader & { layout: Layout }): Promise<StoreImage> {
  const l = header.layout;
  const total = l.meta + l.offsets + l.byAddress + l.byDn + l.chunks.reduce((a, b) => a + b, 0);
  if (size !== start + total) throw invalid(path, `${size - start} body bytes where the header announces ${total} (truncated or corrupt)`);
  const meta = Buffer.allocUnsafe(l.meta);
  const u32 = (bytes: number) => new Uint32Array(bytes / 4);
  const offsets = u32(l.offsets);
  const byAddress = u32(l.byAddress);
  const byDn = u32(l.byDn);
  const chunks = l.chunks.map((c) => Buffer.allocUnsafe(c));
  const sections = [meta, offsets, byAddress, byDn, ...chunks].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const positions: number[] = [];
  sections.reduce((at, s) => (positions.push(at), at + s.length), start);
  const read = async (i: number): Promise<Uint8Array> => {
    const into = sections[i]!;
    for (let done = 0; done < into.length; ) {
      const { bytesRead } = await fh.read(into, done, into.length - done, positions[i]! + done);
      if (bytesRead === 0) throw invalid(path, 'file ended early (truncated or corrupt)');
      done += bytesRead;
    }
    return into;
  };
  const sha = header.crc32 === undefined ? createHash('sha256') : null;
  let pending = read(0);
  for (let i = 0; i < sections.length; i++) {
    const bytes = await pending;
    // The next read runs on libuv's pool while this thread checks the section just read.
    if (i + 1 < sections.length) pending = read(i + 1);
    if (sha) sha.update(bytes);
    else if (crc32(bytes) !== header.crc32![i]) {
      pending.catch(() => undefined);
      throw invalid(path, 'checksum mismatch (truncated or corrupt)');
    }
  }
  if (sha && sha.digest('hex') !== header.sha256) throw invalid(path, 'checksum mismatch (truncated or corrupt)');
  return { chunks, offsets, byAddress, byDn, seed: header.hashSeed ?? FIXED_SEED, ...parseMeta(path, meta) };
}

function parseMeta(path: string, meta: Buffer): { parents: string[]; shared: Array<[string, number[]]> } {
  let m: { parents?: unknown; shared?: unknown };
  try {
    m = JSON.parse(meta.toString('utf8')) as typeof m;
  } catch {
    throw invalid(path, 'unreadable meta section');
  }
  const parents = m.parents;
  const shared = m.shared;
  if (!Array.isArray(parents) || !parents.every((p) => typeof p === 'string')) throw invalid(path, 'malformed parent DN list');
  if (!Array.isArray(shared) || !shared.every((s) => Array.isArray(s) && typeof s[0] === 'string' && Array.isArray(s[1]) && s[1].every(isCount))) {
    throw invalid(path, 'malformed shared address list');
  }
  return { parents: parents as string[], shared: shared as Array<[string, number[]]> };
}
