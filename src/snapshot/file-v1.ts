import { createHash } from 'node:crypto';
import type { DirectoryRecord } from '../directory/types.js';

/**
 * Snapshot file format 1 (JSON lines), read only so that an upgraded process keeps serving
 * from the file an older version wrote until its first sync replaces it:
 *   line 1: `rcptgate-snapshot 1`
 *   line 2: JSON header {createdAt, fullAt, source, entries, addresses, sha256}
 *   then one JSON array per entry: [dn, canonical, [addresses...]]; sha256 covers the body.
 */
export const SNAPSHOT_MAGIC_V1 = 'rcptgate-snapshot 1';

/**
 * Hands each entry of a format-1 body whose header checked out to `visit`; throws a reason when
 * malformed. Decoded a line at a time: the body of a large site (over 512 MiB, some 5 million
 * entries) is longer than the longest string V8 makes. Without `visit`, the entries come back as an array.
 */
export function readV1Body(body: Buffer, sha256: string, entries: number): DirectoryRecord[];
export function readV1Body(body: Buffer, sha256: string, entries: number, visit: (record: DirectoryRecord) => void): void;
export function readV1Body(body: Buffer, sha256: string, entries: number, visit?: (record: DirectoryRecord) => void): DirectoryRecord[] | void {
  const records: DirectoryRecord[] = [];
  const take = visit ?? ((r: DirectoryRecord) => void records.push(r));
  if (createHash('sha256').update(body).digest('hex') !== sha256) throw new Error('checksum mismatch (truncated or corrupt)');
  let count = 0;
  for (let start = 0; start < body.length; ) {
    const nl = body.indexOf(0x0a, start);
    const end = nl < 0 ? body.length : nl;
    const line = body.toString('utf8', start, end);
    start = end + 1;
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new Error(`malformed entry ${count + 1}`);
    }
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string' || !Array.isArray(v[2]) || !v[2].every((a) => typeof a === 'string')) {
      throw new Error(`malformed entry ${count + 1}`);
    }
    take({ dn: v[0], canonical: v[1], addresses: v[2] as string[] });
    count++;
  }
  if (count !== entries) throw new Error(`expected ${entries} entries, found ${count}`);
  return visit ? undefined : records;
}
