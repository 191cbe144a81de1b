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

/** The entries of a format-1 body whose header checked out; throws a reason when malformed. */
export function readV1Body(body: Buffer, sha256: string, entries: number): DirectoryRecord[] {
  if (createHash('sha256').update(body).digest('hex') !== sha256) throw new Error('checksum mismatch (truncated or corrupt)');
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
      throw new Error(`malformed entry ${records.length + 1}`);
    }
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string' || !Array.isArray(v[2]) || !v[2].every((a) => typeof a === 'string')) {
      throw new Error(`malformed entry ${records.length + 1}`);
    }
    records.push({ dn: v[0], canonical: v[1], addresses: v[2] as string[] });
  }
  if (records.length !== entries) throw new Error(`expected ${entries} entries, found ${records.length}`);
  return records;
}
