import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { RecordArena } from '../../src/snapshot/arena.js';
import { readSnapshotStore, writeSnapshot } from '../../src/snapshot/file.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { FIXED_SEED, hashBytes } from '../../src/snapshot/table.js';

/**
 * Addresses crafted to share one hash. FNV-1a's steps can be run backwards, so with a known seed a
 * meet in the middle finds hundreds of colliding addresses in well under a second; whoever can add
 * addresses to the directory (a self-service alias page, a careless bulk import) could make each
 * lookup near them walk the whole cluster. Each store now hashes with its own random seed. The
 * records read per lookup are counted by wrapping the arena's reader (no server can count them);
 * the stores and files are the real ones.
 */
const HOUR = 3_600_000;
const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const ALPHABET = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789');
const FNV_PRIME = 0x01000193;
const FNV_PRIME_INVERSE = 0x359c449b; // FNV_PRIME × this ≡ 1 (mod 2^32)

/** FNV-1a's state (before the finalizer) after `bytes`, from `state`. */
function forward(state: number, bytes: Uint8Array): number {
  let h = state;
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME) >>> 0;
  return h;
}

/** The state before `bytes` that leads to `state` after them. */
function backward(state: number, bytes: Uint8Array): number {
  let h = state;
  for (let i = bytes.length - 1; i >= 0; i--) h = (Math.imul(h, FNV_PRIME_INVERSE) ^ bytes[i]!) >>> 0;
  return h;
}

const word4 = (k: number): Buffer => Buffer.from([0, 1, 2, 3].map((i) => ALPHABET[Math.floor(k / 36 ** i) % 36]!));

/** Addresses `a<4>#<4>@example.com` that all reach one FNV-1a state from FIXED_SEED. */
function craftCollisions(): string[] {
  const n = 36 ** 4;
  // Forward half: the state after "a" and four characters, in an open-addressing table.
  const size = 1 << 23;
  const states = new Uint32Array(size);
  const which = new Int32Array(size).fill(-1);
  const a = forward(FIXED_SEED, Buffer.from('a'));
  for (let k = 0; k < n; k++) {
    const s = forward(a, word4(k));
    let i = s & (size - 1);
    while (which[i] !== -1) i = (i + 1) & (size - 1);
    states[i] = s;
    which[i] = k;
  }
  // Backward half: from one final state through "@example.com", four characters and "#".
  const target = backward(0x5eed1e55, Buffer.from('@example.com'));
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const tail = word4(k);
    const s = backward(backward(target, tail), Buffer.from('#'));
    for (let i = s & (size - 1); which[i] !== -1; i = (i + 1) & (size - 1)) {
      if (states[i] === s) out.push(`a${word4(which[i]!).toString()}#${tail.toString()}@example.com`);
    }
  }
  return out;
}

const record = (address: string): DirectoryRecord => ({ dn: `uid=${address.split('@')[0]},ou=people,dc=example,dc=com`, canonical: address, addresses: [address] });

/** A store hashed with FIXED_SEED, as every store was before seeds (and as version-3 files are). */
function fixedSeedStore(rs: DirectoryRecord[]): SnapshotStore {
  const empty = { chunks: [], offsets: new Uint32Array(0), byAddress: new Uint32Array(16), byDn: new Uint32Array(16), parents: [], shared: [], seed: FIXED_SEED };
  const s = SnapshotStore.fromImage(empty, 0, HOUR);
  for (const r of rs) s.upsert(r);
  return s;
}

/** Records read (findAddress calls) per lookup of each address, and whether all were found. */
function recordsPerLookup(s: SnapshotStore, addresses: string[]): { perLookup: number; found: number } {
  const original = RecordArena.prototype.findAddress;
  let reads = 0;
  RecordArena.prototype.findAddress = function (this: RecordArena, ...args: Parameters<typeof original>) {
    reads++;
    return original.apply(this, args);
  };
  try {
    const found = addresses.filter((x) => s.get(x) === x).length;
    return { perLookup: reads / addresses.length, found };
  } finally {
    RecordArena.prototype.findAddress = original;
  }
}

describe('snapshot index hash seed', () => {
  let crafted: string[];
  let dir: string;

  before(async () => {
    crafted = craftCollisions();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-seed-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('the crafted addresses really collide under the fixed seed', () => {
    assert.ok(crafted.length >= 300, `${crafted.length} crafted addresses`);
    const key = (x: string) => Buffer.from(x);
    const h0 = hashBytes(key(crafted[0]!), 0, crafted[0]!.length, FIXED_SEED);
    assert.ok(crafted.every((x) => hashBytes(key(x), 0, x.length, FIXED_SEED) === h0));
    // Under the fixed seed each lookup walks the cluster: this is the cost a seed removes.
    const fixed = recordsPerLookup(fixedSeedStore(crafted.map(record)), crafted);
    assert.equal(fixed.found, crafted.length);
    assert.ok(fixed.perLookup > crafted.length / 4, `${fixed.perLookup.toFixed(1)} records read per lookup with the fixed seed`);
  });

  test('a store draws its own seed: the same addresses read about one record per lookup', () => {
    const s = SnapshotStore.from(crafted.map(record), 0, HOUR);
    const seeded = recordsPerLookup(s, crafted);
    assert.equal(seeded.found, crafted.length);
    assert.ok(seeded.perLookup < 1.1, `${seeded.perLookup.toFixed(2)} records read per lookup`);
    assert.notEqual(s.image().seed, SnapshotStore.from([], 0, HOUR).image().seed, 'two stores, two seeds (equal by chance once in 2^32)');
  });

  test('the file keeps the seed: a restart finds every address with as few reads', async () => {
    const file = path.join(dir, 'seeded');
    const s = SnapshotStore.from(crafted.map(record), 0, HOUR);
    await writeSnapshot(file, SOURCE, 1, s);
    const header = JSON.parse((await readFile(file, 'utf8')).split('\n')[1]!) as { hashSeed: number };
    assert.equal(header.hashSeed, s.image().seed);
    const { store } = await readSnapshotStore(file, SOURCE, HOUR);
    const read = recordsPerLookup(store, crafted);
    assert.equal(read.found, crafted.length);
    assert.ok(read.perLookup < 1.1, `${read.perLookup.toFixed(2)} records read per lookup`);
  });

  test('a version-3 file (fixed seed) still reads; its seed in a header is ignored', async () => {
    const file = path.join(dir, 'v3');
    const rs = Array.from({ length: 500 }, (_, k) => record(`user${k}@example.com`));
    await writeSnapshot(file, SOURCE, 1, fixedSeedStore(rs));
    const [magic, head, ...rest] = (await readFile(file)).toString('latin1').split('\n');
    assert.equal(magic, 'rcptgate-snapshot 4');
    const header = JSON.parse(head!) as Record<string, unknown>;
    header.hashSeed = 12345; // not the seed the indexes were hashed with
    await writeFile(file, Buffer.from(['rcptgate-snapshot 3', JSON.stringify(header), ...rest].join('\n'), 'latin1'));
    const { store } = await readSnapshotStore(file, SOURCE, HOUR);
    assert.equal(rs.filter((r) => store.get(r.canonical) === r.canonical).length, 500);
    assert.equal(store.image().seed, FIXED_SEED);
  });

  test('a version-4 header without a seed is refused, not read with a guessed one', async () => {
    const file = path.join(dir, 'noseed');
    await writeSnapshot(file, SOURCE, 1, SnapshotStore.from([record('alice@example.com')], 0, HOUR));
    const [magic, head, ...rest] = (await readFile(file)).toString('latin1').split('\n');
    const header = JSON.parse(head!) as Record<string, unknown>;
    delete header.hashSeed;
    await writeFile(file, Buffer.from([magic, JSON.stringify(header), ...rest].join('\n'), 'latin1'));
    await assert.rejects(readSnapshotStore(file, SOURCE, HOUR), /incomplete header/);
  });
});
