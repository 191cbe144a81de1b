import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { readRegularFile, writeFileAtomically } from './atomic-file.js';
import { sameSource } from './source.js';
import type { AnswerCache } from '../recipient/answer-cache.js';

/**
 * The answer cache's positive answers on disk (`cache.persistPath`), so a restart during a
 * directory outage still knows every recipient it had confirmed: they are served fresh until
 * their TTL runs out, then as stale answers for `cache.staleIfError`, like before the restart.
 * "No such entry" answers are never written: after a restart an unknown recipient is asked
 * again, and a directory that cannot answer makes it a tempfail, never a rejection.
 *
 * Format, version 1:
 *   line 1: `rcptgate-answers 1`
 *   line 2: JSON header {savedAt, source, count, sha256}
 *   then per answer, least recently used first: u16 key length, key, u16 primary address length
 *   (0xffff: same as the key), primary address, u16 DN length, DN, f64 fresh-until (ms since
 *   epoch), little-endian. `sha256` covers every byte after the header line; `source` names the
 *   directory. Written to a temp file, fsynced, then renamed.
 */
export const ANSWERS_MAGIC = 'rcptgate-answers 1';
const SAME = 0xffff;
const BLOCK = 1 << 20;

export interface AnswersHeader {
  savedAt: number;
  source: string;
  count: number;
  sha256: string;
  /** The shortest cache.positiveTtl the answers were stored with (absent in older files). */
  positiveTtlMs?: number;
}

/** Appends encoded answers to a list of 1 MiB blocks. */
class BlockWriter {
  readonly blocks: Buffer[] = [];
  private block = Buffer.allocUnsafe(BLOCK);
  private at = 0;

  put(key: string, canonical: string, dn: string, freshUntil: number): void {
    const k = Buffer.byteLength(key);
    const c = canonical === key ? 0 : Buffer.byteLength(canonical);
    const d = Buffer.byteLength(dn);
    if (k >= SAME || c >= SAME || d >= SAME) return;
    const size = 14 + k + c + d;
    if (this.at + size > this.block.length) this.flush(size);
    const b = this.block;
    b.writeUInt16LE(k, this.at);
    this.at += 2 + b.write(key, this.at + 2, 'utf8');
    b.writeUInt16LE(canonical === key ? SAME : c, this.at);
    this.at += 2 + (canonical === key ? 0 : b.write(canonical, this.at + 2, 'utf8'));
    b.writeUInt16LE(d, this.at);
    this.at += 2 + b.write(dn, this.at + 2, 'utf8');
    b.writeDoubleLE(freshUntil, this.at);
    this.at += 8;
  }

  flush(room = BLOCK): Buffer[] {
    if (this.at > 0) this.blocks.push(this.block.subarray(0, this.at));
    this.block = Buffer.allocUnsafe(Math.max(BLOCK, room));
    this.at = 0;
    return this.blocks;
  }
}

/** Writes the cache's positive answers that are still worth keeping (fresh or within `staleMs`). */
export async function saveAnswers(path: string, source: string, cache: AnswerCache, now: number, staleMs: number): Promise<number> {
  const w = new BlockWriter();
  let count = 0;
  // Oldest first, so that loading rebuilds the same recency order. get() makes each key the most
  // recently used in turn, which leaves the order as it was.
  const keys = [...cache.keysByAge()];
  for (let i = 0; i < keys.length; i++) {
    // A million answers take a few seconds to encode: let lookups run in between.
    if ((i & 8191) === 8191) await nextTurn();
    const key = keys[i]!;
    const a = cache.get(key);
    if (!a || a.canonical === null || a.dn === null || now >= a.freshUntil + staleMs) continue;
    w.put(key, a.canonical, a.dn, a.freshUntil);
    count++;
  }
  const blocks = w.flush();
  const hash = createHash('sha256');
  for (const b of blocks) hash.update(b);
  const ttl = cache.shortestPositiveTtlMs;
  const header: AnswersHeader = { savedAt: now, source, count, sha256: hash.digest('hex'), ...(Number.isFinite(ttl) ? { positiveTtlMs: ttl } : {}) };
  await writeFileAtomically(path, `${ANSWERS_MAGIC}\n${JSON.stringify(header)}\n`, blocks);
  return count;
}

/**
 * Puts the answers of a file into the cache (skipping those past their stale window); returns
 * how many. Throws an Error naming the reason when the file is missing, foreign or corrupt.
 */
export async function loadAnswers(path: string, source: string, cache: AnswerCache, now: number, staleMs: number): Promise<number> {
  let buf: Buffer;
  try {
    buf = await readRegularFile(path);
  } catch (err) {
    throw new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read it (${(err as Error).message})`);
  }
  const nl1 = buf.indexOf(0x0a);
  const nl2 = nl1 < 0 ? -1 : buf.indexOf(0x0a, nl1 + 1);
  if (nl1 < 0 || nl2 < 0 || buf.subarray(0, nl1).toString('utf8') !== ANSWERS_MAGIC) throw new Error('not an rcptgate answer file (version 1)');
  let header: AnswersHeader;
  try {
    header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as AnswersHeader;
  } catch {
    throw new Error('unreadable header');
  }
  if (header === null || typeof header !== 'object' || typeof header.sha256 !== 'string' || typeof header.source !== 'string' || !Number.isInteger(header.count)) {
    throw new Error('incomplete header');
  }
  if (!sameSource(header.source, source)) throw new Error(`written for another directory (${header.source})`);
  const body = buf.subarray(nl2 + 1);
  if (createHash('sha256').update(body).digest('hex') !== header.sha256) throw new Error('checksum mismatch (truncated or corrupt)');
  // First pass: structure only (no strings); nothing reaches the cache unless the file checks out.
  const count = walk(body, () => undefined);
  if (count !== header.count) throw new Error(`expected ${header.count} answers, found ${count}`);
  // Saved "in the future": the clock ran ahead while the answers were timed (then was set right).
  // Their lifetimes count from the save as if it were now, not from a time not yet reached.
  const ahead = Number.isFinite(header.savedAt) && header.savedAt > now ? header.savedAt - now : 0;
  // When they were cached is read as their expiry less this (recipient/superseded.ts): a restart
  // with a longer positiveTtl must not make answers cached after the snapshot look older than it.
  const ttl = header.positiveTtlMs;
  if (typeof ttl === 'number' && ttl >= 0) cache.shortestPositiveTtlMs = Math.min(cache.shortestPositiveTtlMs, ttl);
  let loaded = 0;
  walk(body, (key, canonical, dn, saved) => {
    const freshUntil = saved - ahead;
    if (!(now < freshUntil + staleMs)) return;
    cache.set(key, { canonical, dn }, freshUntil);
    loaded++;
  });
  return loaded;
}

type Visit = (key: string, canonical: string, dn: string, freshUntil: number) => void;

/** Walks the answers of a body, decoding them only for a visitor that takes arguments. */
function walk(body: Buffer, visit: Visit): number {
  const decode = visit.length > 0;
  let p = 0;
  let count = 0;
  const field = (): [number, number] => {
    if (p + 2 > body.length) throw new Error('malformed answer list');
    const len = body.readUInt16LE(p);
    const start = p + 2;
    p = start + (len === SAME ? 0 : len);
    if (p > body.length) throw new Error('malformed answer list');
    return [start, len];
  };
  while (p < body.length) {
    const [ks, kl] = field();
    if (kl === SAME) throw new Error('malformed answer list');
    const [cs, cl] = field();
    const [ds, dl] = field();
    if (dl === SAME || p + 8 > body.length) throw new Error('malformed answer list');
    const freshUntil = body.readDoubleLE(p);
    p += 8;
    count++;
    if (!decode) continue;
    const key = body.toString('utf8', ks, ks + kl);
    visit(key, cl === SAME ? key : body.toString('utf8', cs, cs + cl), body.toString('utf8', ds, ds + dl), freshUntil);
  }
  return count;
}
