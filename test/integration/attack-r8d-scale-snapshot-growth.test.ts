/**
 * A full sync of a large directory must not hold the event loop: a backup MX keeps asking while
 * it runs. The compact store's two open-addressing indexes grew by rehashing every slot at once,
 * both in the same insert (one address per entry puts them at the same count): at 2.77 million
 * entries that one upsert took 210-260 ms, at 7.6 million 533 ms, with every lookup waiting.
 * Writing the file summed the CRC-32 of each section in one call (the address index of 10 million
 * addresses is over 200 MB). Here the real SnapshotSync lists 4,000,000 generated entries in
 * pages of 500, as LDAP delivers them, into the real store and writes the real file, while a
 * 1 ms timer records the longest gap. Growth is now spread over the inserts that follow it; the
 * second test checks that lookups stay exact through growths with removals and replacements.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Directory, DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { readSnapshotStore } from '../../src/snapshot/file.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { SnapshotSync, snapshotSource } from '../../src/snapshot/sync.js';
import { HashIndex } from '../../src/snapshot/table.js';

const ENTRIES = 4_000_000;
/** Longest the event loop may stay busy in one go during the sync (the old store: over 200 ms). */
const MAX_GAP_MS = 150;

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8d-growth-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const record = (k: number): DirectoryRecord => ({ dn: `uid=user${k},ou=people,dc=example,dc=com`, canonical: `user${k}@example.com`, addresses: [`user${k}@example.com`] });

/** A directory that lists `n` entries in pages of 500, each page arriving in a later tick. */
function paged(n: number): Directory {
  return {
    kind: 'ldap',
    lookup: async () => ({ entry: null }),
    probe: async () => undefined,
    listAll: async function* () {
      for (let k = 1; k <= n; k++) {
        if (k % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
        yield record(k);
      }
    },
    close: async () => undefined,
  };
}

describe('a full sync of millions of addresses', () => {
  test(`keeps the event loop free: no gap over ${MAX_GAP_MS} ms while ${ENTRIES.toLocaleString('en')} entries are indexed and written`, { timeout: 300_000 }, async (t) => {
    const snapshotPath = path.join(dir, 'snapshot');
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } },
      sync: { enabled: true, snapshotPath, maxAge: '1d' },
    });
    let published: SnapshotStore | null = null;
    const sync = new SnapshotSync({ config, directory: paged(ENTRIES), metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: (s) => (published = s), changes: null });
    let last = performance.now();
    let gap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      gap = Math.max(gap, now - last);
      last = now;
    }, 1);
    try {
      const report = await sync.full();
      assert.equal(report.addresses, ENTRIES);
    } finally {
      clearInterval(timer);
      await sync.stop();
    }
    t.diagnostic(`longest event-loop gap during the sync: ${gap.toFixed(0)} ms`);
    assert.ok(gap <= MAX_GAP_MS, `the event loop stalled for ${gap.toFixed(0)} ms during the sync (bound ${MAX_GAP_MS} ms)`);
    const store = published as SnapshotStore | null;
    for (const k of [1, 2_774_017, 3_883_636, ENTRIES]) assert.equal(store?.get(`user${k}@example.com`), `user${k}@example.com`);
    assert.equal(store?.get('user0@example.com'), undefined);
    const { store: loaded } = await readSnapshotStore(snapshotPath, snapshotSource(config), Infinity);
    assert.equal(loaded.size, ENTRIES);
    assert.equal(loaded.get(`user${ENTRIES}@example.com`), `user${ENTRIES}@example.com`);
  });

  test('the index finds every value through growths with removals and replacements, as the store does', () => {
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
    // Clustered hashes: long probe runs, and runs that wrap past the end of the table.
    const hashOf = () => (rnd() < 0.3 ? 0xffffff00 + Math.floor(rnd() * 256) : rnd() < 0.5 ? Math.floor(rnd() * 4096) : Math.floor(rnd() * 4294967296)) >>> 0;
    for (let round = 0; round < 10; round++) {
      const t = new HashIndex();
      const values: number[] = [];
      const hashes = new Map<number, number>();
      let fresh = 0;
      for (let op = 0; op < 30_000; op++) {
        const r = rnd();
        if (r < 0.6 || values.length === 0) {
          const h = hashOf();
          t.insert(h, fresh);
          hashes.set(fresh, h);
          values.push(fresh++);
          continue;
        }
        const at = Math.floor(rnd() * values.length);
        const v = values[at]!;
        const slot = t.slotOf(hashes.get(v)!, v);
        assert.ok(slot >= 0, `round ${round}, op ${op}: value ${v} lost`);
        if (r < 0.8) {
          t.removeAt(slot);
          values[at] = values[values.length - 1]!;
          values.pop();
        } else {
          t.set(slot, fresh);
          hashes.set(fresh, hashes.get(v)!);
          values[at] = fresh++;
        }
        hashes.delete(v);
      }
      for (const v of values) assert.ok(t.slotOf(hashes.get(v)!, v) >= 0, `round ${round}: value ${v} lost`);
      assert.equal(t.count, values.length);
      let held = 0;
      for (let i = 1; i < t.slots.length; i += 2) if (t.slots[i] !== 0) held++;
      assert.equal(held, values.length, `round ${round}: the index holds other values than those inserted`);
    }
  });

  test('a store compacted while its address index grows still answers every address', () => {
    const store = new SnapshotStore(0, Infinity);
    const n = 150_000;
    for (let k = 1; k <= n; k++) store.upsert(record(k));
    // Each entry gains aliases, twice: records are replaced (garbage, compaction) while the
    // address index takes new keys (growth).
    for (const round of [1, 2]) {
      for (let k = 1; k <= n; k++) {
        const aliases = Array.from({ length: round }, (_, i) => `alias${i}.user${k}@example.com`);
        store.upsert({ ...record(k), addresses: [`user${k}@example.com`, ...aliases] });
      }
    }
    assert.equal(store.size, n * 3);
    for (let k = 1; k <= n; k++) {
      assert.equal(store.get(`user${k}@example.com`), `user${k}@example.com`);
      assert.equal(store.get(`alias1.user${k}@example.com`), `user${k}@example.com`);
    }
    assert.equal(store.get('alias2.user1@example.com'), undefined);
  });
});
