import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DirectoryRecord } from '../directory/types.js';
import { ErrorCodes, RcptgateError } from '../errors.js';

/**
 * Snapshot file format, version 1:
 *   line 1: `rcptgate-snapshot 1`
 *   line 2: JSON header {createdAt, fullAt, source, entries, addresses, sha256}
 *   then one JSON array per entry: [dn, canonical, [addresses...]]
 * `sha256` covers every byte after the header line. `source` identifies the directory (URLs,
 * base DN, filter) so a file written for another directory is refused. Written to a temp file,
 * fsynced, then renamed: a reader sees the old file or the new one, never a torn one.
 */
export const SNAPSHOT_MAGIC = 'rcptgate-snapshot 1';

export interface SnapshotHeader {
  /** When the data was last read from the directory (full or incremental sync), ms since epoch. */
  createdAt: number;
  /** When the last full sync started (deletions are only seen by full syncs). */
  fullAt: number;
  source: string;
  entries: number;
  addresses: number;
  sha256: string;
}

export interface SnapshotContents {
  header: SnapshotHeader;
  records: DirectoryRecord[];
}

function invalid(path: string, why: string): RcptgateError {
  return new RcptgateError(ErrorCodes.SNAPSHOT_INVALID, `snapshot ${path} rejected: ${why}`);
}

export async function writeSnapshot(path: string, source: string, createdAt: number, records: Iterable<DirectoryRecord>, fullAt = createdAt): Promise<SnapshotHeader> {
  const chunks: string[] = [];
  let entries = 0;
  let addresses = 0;
  for (const r of records) {
    chunks.push(JSON.stringify([r.dn, r.canonical, r.addresses]) + '\n');
    entries++;
    addresses += r.addresses.length;
  }
  const body = Buffer.from(chunks.join(''), 'utf8');
  const header: SnapshotHeader = { createdAt, fullAt, source, entries, addresses, sha256: createHash('sha256').update(body).digest('hex') };
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(`${SNAPSHOT_MAGIC}\n${JSON.stringify(header)}\n`);
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // Whatever failed, the previous snapshot stays in place and no temp file is left behind.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // Persist the rename itself; some filesystems cannot fsync a directory, which is harmless.
  const dh = await open(dir, 'r').catch(() => null);
  await dh?.sync().catch(() => undefined);
  await dh?.close();
  return header;
}

/** Reads and verifies a snapshot; throws SNAPSHOT_INVALID with the reason for anything wrong. */
export async function readSnapshot(path: string, expectedSource: string): Promise<SnapshotContents> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw invalid(path, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read it (${(err as Error).message})`);
  }
  const nl1 = buf.indexOf(0x0a);
  const nl2 = nl1 < 0 ? -1 : buf.indexOf(0x0a, nl1 + 1);
  if (nl1 < 0 || nl2 < 0 || buf.subarray(0, nl1).toString('utf8') !== SNAPSHOT_MAGIC) throw invalid(path, 'not an rcptgate snapshot (version 1)');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as SnapshotHeader;
  } catch {
    throw invalid(path, 'unreadable header');
  }
  if (
    header === null ||
    typeof header !== 'object' ||
    typeof header.sha256 !== 'string' ||
    typeof header.createdAt !== 'number' ||
    typeof header.source !== 'string' ||
    !Number.isInteger(header.entries) ||
    header.entries < 0
  ) {
    throw invalid(path, 'incomplete header');
  }
  if (typeof header.fullAt !== 'number') header.fullAt = header.createdAt;
  if (header.source !== expectedSource) throw invalid(path, `written for another directory (${header.source})`);
  const body = buf.subarray(nl2 + 1);
  if (createHash('sha256').update(body).digest('hex') !== header.sha256) throw invalid(path, 'checksum mismatch (truncated or corrupt)');
  const records: DirectoryRecord[] = [];
  const text = body.toString('utf8');
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end < 0 ? text.length : end);
    start = end < 0 ? text.length : end + 1;
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw invalid(path, `malformed entry ${records.length + 1}`);
    }
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string' || !Array.isArray(v[2]) || !v[2].every((a) => typeof a === 'string')) {
      throw invalid(path, `malformed entry ${records.length + 1}`);
    }
    records.push({ dn: v[0], canonical: v[1], addresses: v[2] as string[] });
  }
  if (records.length !== header.entries) throw invalid(path, `expected ${header.entries} entries, found ${records.length}`);
  return { header, records };
}
