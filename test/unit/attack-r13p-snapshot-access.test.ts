import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { RecordArena } from '../../src/snapshot/arena.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { hashBytes } from '../../src/snapshot/table.js';

/**
 * What a snapshot lookup touches at scale, where every memory access outside the caches costs a
 * cache and a TLB miss: a miss reads its hash slots only (the 32-bit hash in the slot rules the
 * record out), a hit reads one record and decodes nothing when the key is the primary address,
 * and probe runs stay short. Counted by wrapping the arena's readers (no server can count
 * memory accesses); the store itself is the real one.
 */
const N = 100_000;
const HOUR = 3_600_000;

function records(n: number): Iterable<DirectoryRecord> {
  return {
    *[Symbol.iterator]() {
      for (let k = 1; k <= n; k++) yield { dn: `uid=user${k},ou=people,dc=example,dc=com`, canonical: `user${k}@example.com`, addresses: [`user${k}@example.com`] };
    },
  };
}

type Reader = 'findAddress' | 'canonical' | 'addresses' | 'dn';
const READERS: Reader[] = ['findAddress', 'canonical', 'addresses', 'dn'];
const calls = new Map<Reader, number>();
const originals = new Map<Reader, (...args: never[]) => unknown>();

function counted<T>(f: () => T): [T, Record<Reader, number>] {
  calls.clear();
  const out = f();
  return [out, Object.fromEntries(READERS.map((r) => [r, calls.get(r) ?? 0])) as Record<Reader, number>];
}

/** The image as a file holds it: copies, not views of the live store. */
async function reloaded(s: SnapshotStore): Promise<SnapshotStore> {
  await s.settle();
  const i = s.image();
  const image = { ...i, chunks: i.chunks.map((c) => Buffer.from(c)), offsets: i.offsets.slice(), byAddress: i.byAddress.slice(), byDn: i.byDn.slice() };
  return SnapshotStore.fromImage(image, 0, HOUR);
}

/** Mean slots read by a lookup: walked from the home slot of each hash to the key (hit) or an empty slot (miss). */
function meanProbes(slots: Uint32Array, hashes: number[], hit: boolean): number {
  const cap = slots.length >>> 1;
  let total = 0;
  for (const h of hashes) {
    let i = Math.min(cap - 1, Math.floor((h * cap) / 4294967296));
    for (let n = 1; ; n++, i = i + 1 === cap ? 0 : i + 1) {
      if (slots[i * 2 + 1] === 0 || (hit && slots[i * 2] === h)) {
        total += n;
        break;
      }
    }
  }
  return total / hashes.length;
}

const hashOf = (s: string, seed: number) => hashBytes(Buffer.from(s), 0, Buffer.byteLength(s), seed);

describe('snapshot lookups touch little memory at scale', () => {
  let built: SnapshotStore;
  let loaded: SnapshotStore;

  before(async () => {
    for (const r of READERS) {
      const f = RecordArena.prototype[r] as (...args: never[]) => unknown;
      originals.set(r, f);
      (RecordArena.prototype as unknown as Record<Reader, unknown>)[r] = function (this: RecordArena, ...args: never[]) {
        calls.set(r, (calls.get(r) ?? 0) + 1);
        return f.apply(this, args);
      };
    }
    built = SnapshotStore.from(records(N), 0, HOUR);
    await built.settle();
    loaded = await reloaded(built);
  });

  after(() => {
    for (const [r, f] of originals) (RecordArena.prototype as unknown as Record<Reader, unknown>)[r] = f;
  });

  for (const which of ['built by a sync', 'loaded from its file'] as const) {
    test(`a miss reads no record (${which})`, () => {
      const s = which === 'built by a sync' ? built : loaded;
      const [found, n] = counted(() => {
        let found = 0;
        for (let k = 1; k <= 20_000; k++) if (s.get(`nouser${k}@example.com`) !== undefined) found++;
        return found;
      });
      assert.equal(found, 0);
      // Only a full 32-bit hash collision would read a record: about 1 in 10^5 runs of this test.
      assert.ok(n.findAddress <= 1, `20,000 misses read ${n.findAddress} records`);
      assert.deepEqual([n.canonical, n.addresses, n.dn], [0, 0, 0]);
    });

    test(`a hit reads one record and decodes nothing when the key is the primary address (${which})`, () => {
      const s = which === 'built by a sync' ? built : loaded;
      const [ok, n] = counted(() => {
        let ok = 0;
        for (let k = 1; k <= 20_000; k++) {
          const key = `user${1 + ((k * 7919) % N)}@example.com`;
          if (s.get(key) === key) ok++;
        }
        return ok;
      });
      assert.equal(ok, 20_000);
      assert.equal(n.findAddress, 20_000, 'one record per hit');
      assert.deepEqual([n.canonical, n.addresses, n.dn], [0, 0, 0], 'the key itself is the answer');
    });
  }

  test('probe runs stay short: at most 70 % load, a few slots per hit and per miss', () => {
    const { byAddress: slots, seed } = built.image();
    const load = built.size / (slots.length >>> 1);
    assert.ok(load <= 0.7, `load ${load.toFixed(2)}`);
    const hits = meanProbes(slots, Array.from({ length: 20_000 }, (_, k) => hashOf(`user${1 + ((k * 7919) % N)}@example.com`, seed)), true);
    const misses = meanProbes(slots, Array.from({ length: 20_000 }, (_, k) => hashOf(`nouser${k}@example.com`, seed)), false);
    // Linear probing at load a: (1 + 1/(1-a)) / 2 slots per hit, (1 + 1/(1-a)^2) / 2 per miss (2.2 and 6.1 at 70 %).
    assert.ok(hits <= 2.6, `${hits.toFixed(2)} slots per hit`);
    assert.ok(misses <= 7.5, `${misses.toFixed(2)} slots per miss`);
  });
});
