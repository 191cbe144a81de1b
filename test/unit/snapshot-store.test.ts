import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { SnapshotStore, snapshotKey } from '../../src/snapshot/store.js';
import { FakeClock } from '../helpers/fake-directory.js';

const HOUR = 3_600_000;

function rec(uid: string, ...addresses: string[]): DirectoryRecord {
  return { dn: `uid=${uid},ou=people,dc=example,dc=com`, canonical: addresses[0]!, addresses };
}

describe('snapshot store', () => {
  test('answers the canonical address for every address of an entry', () => {
    const s = SnapshotStore.from([rec('alice', 'alice@example.com', 'ally@example.com'), rec('bob', 'bob@example.com')], 0, HOUR);
    assert.equal(s.get('alice@example.com'), 'alice@example.com');
    assert.equal(s.get('ally@example.com'), 'alice@example.com');
    assert.equal(s.get('bob@example.com'), 'bob@example.com');
    assert.equal(s.get('carol@example.com'), undefined);
    assert.equal(s.size, 3);
    assert.equal(s.entries, 2);
  });

  test('keys addresses the way the engine normalizes them: lowercase, IDN domain as A-label', () => {
    const s = SnapshotStore.from([{ dn: 'uid=carol', canonical: 'Carol.Mixed@Example.COM', addresses: ['Carol.Mixed@Example.COM', 'info@Bücher.example'] }], 0, HOUR);
    assert.equal(s.get('carol.mixed@example.com'), 'Carol.Mixed@Example.COM', 'canonical keeps the directory spelling');
    assert.equal(s.get('info@xn--bcher-kva.example'), 'Carol.Mixed@Example.COM');
    assert.equal(s.get('Carol.Mixed@Example.COM'), undefined, 'lookups use normalized keys only');
    assert.equal(snapshotKey('User1@EXAMPLE.com'), 'user1@example.com');
  });

  test('upsert of a known DN replaces its addresses: old ones are gone, new ones answer', () => {
    const s = SnapshotStore.from([rec('alice', 'alice@example.com', 'ally@example.com')], 0, HOUR);
    s.upsert(rec('alice', 'alice.smith@example.com', 'alice@example.com'));
    assert.equal(s.get('ally@example.com'), undefined);
    assert.equal(s.get('alice.smith@example.com'), 'alice.smith@example.com');
    assert.equal(s.get('alice@example.com'), 'alice.smith@example.com');
    assert.equal(s.entries, 1);
    assert.equal(s.size, 2);
  });

  test('matches DNs case-insensitively on upsert and remove', () => {
    const s = SnapshotStore.from([{ dn: 'UID=Bob,OU=People,DC=example,DC=com', canonical: 'bob@example.com', addresses: ['bob@example.com'] }], 0, HOUR);
    s.upsert({ dn: 'uid=bob,ou=people,dc=example,dc=com', canonical: 'robert@example.com', addresses: ['robert@example.com'] });
    assert.equal(s.entries, 1);
    assert.equal(s.get('bob@example.com'), undefined);
    assert.equal(s.remove('Uid=BOB,ou=people,dc=EXAMPLE,dc=com'), true);
    assert.equal(s.get('robert@example.com'), undefined);
    assert.equal(s.entries, 0);
  });

  test('keys a catch-all value (@domain) as lookups ask for it, whatever its case', () => {
    const s = SnapshotStore.from([{ dn: 'uid=catch,dc=example,dc=com', canonical: '@Catch.Example', addresses: ['@Catch.Example'] }], 0, HOUR);
    assert.equal(s.get('@catch.example'), '@Catch.Example');
    assert.equal(s.get('anyone@catch.example'), undefined);
  });

  test('remove drops every address of the entry and reports whether it existed', () => {
    const s = SnapshotStore.from([rec('alice', 'alice@example.com', 'ally@example.com'), rec('bob', 'bob@example.com')], 0, HOUR);
    assert.equal(s.remove('uid=alice,ou=people,dc=example,dc=com'), true);
    assert.equal(s.get('alice@example.com'), undefined);
    assert.equal(s.get('ally@example.com'), undefined);
    assert.equal(s.get('bob@example.com'), 'bob@example.com');
    assert.equal(s.remove('uid=alice,ou=people,dc=example,dc=com'), false);
    assert.equal(s.size, 1);
  });

  test('an address held by two entries stays valid until both are gone', () => {
    const s = SnapshotStore.from([rec('alice', 'alice@example.com', 'team@example.com'), rec('bob', 'bob@example.com', 'team@example.com')], 0, HOUR);
    s.remove('uid=bob,ou=people,dc=example,dc=com');
    assert.equal(s.get('team@example.com'), 'alice@example.com');
    s.upsert(rec('bob', 'bob@example.com', 'team@example.com'));
    s.upsert(rec('alice', 'alice@example.com'));
    assert.equal(s.get('team@example.com'), 'bob@example.com');
    s.remove('uid=bob,ou=people,dc=example,dc=com');
    assert.equal(s.get('team@example.com'), undefined);
  });

  test('a shared address answers the entry whose primary address it is, like a live lookup', () => {
    const s = SnapshotStore.from([rec('zed', 'zed@example.com', 'sales@example.com'), rec('sales', 'sales@example.com')], 0, HOUR);
    assert.equal(s.get('sales@example.com'), 'sales@example.com');
    const t = SnapshotStore.from([rec('sales', 'sales@example.com'), rec('zed', 'zed@example.com', 'sales@example.com')], 0, HOUR);
    assert.equal(t.get('sales@example.com'), 'sales@example.com', 'independent of insertion order');
  });

  test('records() returns each entry once with normalized addresses', () => {
    const s = SnapshotStore.from([rec('alice', 'Alice@Example.com', 'alice@example.com'), rec('bob', 'bob@example.com')], 0, HOUR);
    const all = [...s.records()];
    assert.equal(all.length, 2);
    assert.deepEqual(all.find((r) => r.dn.startsWith('uid=alice'))!.addresses, ['alice@example.com']);
  });

  test('is fresh up to sync.maxAge after its creation and stale after it', () => {
    const clock = new FakeClock();
    const s = new SnapshotStore(clock.t, HOUR, clock.now);
    assert.equal(s.isFresh(), true);
    clock.advance(HOUR);
    assert.equal(s.isFresh(), true);
    assert.equal(s.ageSeconds(), 3600);
    clock.advance(1);
    assert.equal(s.isFresh(), false);
    s.createdAt = clock.t;
    assert.equal(s.isFresh(), true);
    assert.equal(s.ageSeconds(), 0);
  });

  test('after any sequence of upserts and removes it answers exactly what a rebuild from the remaining entries answers', () => {
    const uid = fc.constantFrom('a', 'b', 'c', 'd');
    const addr = fc.constantFrom('x@example.com', 'y@example.com', 'Z@example.com', 'w@example.org');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('upsert' as const), uid, addresses: fc.uniqueArray(addr, { minLength: 1, maxLength: 3 }) }),
      fc.record({ kind: fc.constant('remove' as const), uid }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const s = new SnapshotStore(0, HOUR);
        const model = new Map<string, DirectoryRecord>();
        for (const o of ops) {
          if (o.kind === 'upsert') {
            s.upsert(rec(o.uid, ...o.addresses));
            model.set(o.uid, rec(o.uid, ...o.addresses));
          } else {
            s.remove(rec(o.uid, 'unused@example.com').dn);
            model.delete(o.uid);
          }
        }
        const rebuilt = SnapshotStore.from(model.values(), 0, HOUR);
        for (const a of ['x@example.com', 'y@example.com', 'z@example.com', 'w@example.org']) {
          assert.equal(s.get(a), rebuilt.get(a), a);
        }
        assert.equal(s.size, rebuilt.size);
        assert.equal(s.entries, model.size);
      }),
    );
  });

  test('settle() completes an index growth in progress: the image is the larger table, every address still answers', async () => {
    // 4,650 entries leave both indexes mid-growth (past 70 % load of 6,588 slots; the copy to 9,240
    // takes about 100 inserts).
    const records: DirectoryRecord[] = Array.from({ length: 4_650 }, (_, k) => ({ dn: `uid=u${k},dc=example,dc=com`, canonical: `u${k}@example.com`, addresses: [`u${k}@example.com`] }));
    const store = SnapshotStore.from(records, 0, 86_400_000);
    const load = () => store.size / (store.image().byAddress.length / 2);
    assert.ok(load() > 0.7, `the address index is still the old, fuller table (load ${load().toFixed(2)})`);
    await store.settle();
    assert.ok(load() < 0.55, `after settle() the larger table is in use (load ${load().toFixed(2)})`);
    for (const r of records) assert.equal(store.get(r.canonical), r.canonical);
    assert.equal(store.get('nobody@example.com'), undefined);
  });

  test('stays exact through index growth, deletions and record compaction at scale', () => {
    // Enough churn to grow both indexes several times and to compact the record bytes.
    const s = new SnapshotStore(0, HOUR);
    const model = new Map<number, string[]>();
    let seed = 42;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let step = 0; step < 60_000; step++) {
      const k = rand(8_000);
      if (rand(4) === 0) {
        s.remove(`uid=u${k},ou=people,dc=example,dc=com`);
        model.delete(k);
      } else {
        const addresses = [`u${k}@example.com`, `alias${rand(20_000)}-of-user-number-${k}@example.com`];
        s.upsert({ dn: `uid=u${k},ou=people,dc=example,dc=com`, canonical: addresses[0]!, addresses });
        model.set(k, addresses);
      }
    }
    assert.equal(s.entries, model.size);
    assert.equal(s.size, model.size * 2);
    for (let k = 0; k < 8_000; k++) {
      const addresses = model.get(k);
      assert.equal(s.get(`u${k}@example.com`), addresses ? `u${k}@example.com` : undefined);
      if (addresses) assert.equal(s.get(addresses[1]!), `u${k}@example.com`);
    }
    assert.equal([...s.records()].length, model.size);
  });
});
