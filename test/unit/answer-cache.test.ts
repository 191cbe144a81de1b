import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AnswerCache } from '../../src/recipient/answer-cache.js';

type Entry = { canonical: string; dn: string } | null;

/**
 * The reference: a Map in recency order (re-inserted on use), trimmed from the front; a new
 * unknown answer takes the oldest unknown one's place once unknown answers fill a quarter of it,
 * and any new answer does while they fill more.
 */
class ModelLru {
  readonly map = new Map<string, { entry: Entry; freshUntil: number }>();
  evictions = 0;
  constructor(readonly max: number) {}
  private victim(entry: Entry): string {
    const unknown = [...this.map].filter(([, v]) => v.entry === null).map(([k]) => k);
    const share = Math.max(1, Math.floor(this.max / 4));
    if (unknown.length > share || (entry === null && unknown.length >= share)) return unknown[0]!;
    return this.map.keys().next().value!;
  }
  get(key: string) {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, entry: Entry, freshUntil: number) {
    if (!this.map.has(key) && this.map.size >= this.max) {
      this.map.delete(this.victim(entry));
      this.evictions++;
    }
    this.map.delete(key);
    this.map.set(key, { entry, freshUntil });
  }
}

describe('AnswerCache', () => {
  it('stores found and not-found answers with DN, canonical address and freshness', () => {
    const c = new AnswerCache(10);
    c.set('alice@example.com', { canonical: 'Alice@Example.com', dn: 'uid=alice,ou=people,dc=example,dc=com' }, 1000);
    c.set('bob@example.com', { canonical: 'bob@example.com', dn: 'uid=bob,ou=people,dc=example,dc=com' }, 2000);
    c.set('nobody@example.com', null, 3000);
    c.set('x@example.com', { canonical: 'x@example.com', dn: 'cn=x' }, 4000);
    assert.deepEqual(c.get('alice@example.com'), { canonical: 'Alice@Example.com', dn: 'uid=alice,ou=people,dc=example,dc=com', freshUntil: 1000 });
    assert.deepEqual(c.get('bob@example.com'), { canonical: 'bob@example.com', dn: 'uid=bob,ou=people,dc=example,dc=com', freshUntil: 2000 });
    assert.deepEqual(c.get('nobody@example.com'), { canonical: null, dn: null, freshUntil: 3000 });
    assert.deepEqual(c.get('x@example.com'), { canonical: 'x@example.com', dn: 'cn=x', freshUntil: 4000 });
    assert.equal(c.get('carol@example.com'), undefined);
    assert.equal(c.size, 4);
  });

  it('turns a cached answer into another when set again', () => {
    const c = new AnswerCache(2);
    c.set('a@x', null, 1);
    c.set('a@x', { canonical: 'A@x', dn: 'uid=a,dc=x' }, 2);
    assert.deepEqual(c.get('a@x'), { canonical: 'A@x', dn: 'uid=a,dc=x', freshUntil: 2 });
    c.set('a@x', null, 3);
    assert.deepEqual(c.get('a@x'), { canonical: null, dn: null, freshUntil: 3 });
    assert.equal(c.size, 1);
  });

  it('keeps DNs exact when there are more distinct DN tails than it shares', () => {
    const c = new AnswerCache(6000);
    for (let i = 0; i < 5000; i++) c.set(`u${i}@x`, { canonical: `u${i}@x`, dn: `uid=u${i},ou=unit${i},dc=x` }, i);
    for (let i = 0; i < 5000; i += 499) assert.equal(c.get(`u${i}@x`)?.dn, `uid=u${i},ou=unit${i},dc=x`);
  });

  it('behaves like a least-recently-used map, unknown answers capped at a quarter when full, under any sequence of operations', () => {
    const key = fc.constantFrom('a@x', 'b@x', 'c@x', 'd@x', 'e@x', 'f@x');
    const entry: fc.Arbitrary<Entry> = fc.option(fc.record({ canonical: fc.constantFrom('A@x', 'b@x', 'c@x'), dn: fc.constantFrom('uid=a,dc=x', 'uid=b,ou=p,dc=x', 'cn=z', ',dc=x', 'uid=\\,q,dc=x') }), { nil: null });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), key, entry, fresh: fc.integer() }),
      fc.record({ kind: fc.constant('get' as const), key }),
      fc.record({ kind: fc.constant('delete' as const), key }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
        let evictions = 0;
        const c = new AnswerCache(max, () => evictions++);
        const m = new ModelLru(max);
        for (const o of ops) {
          if (o.kind === 'set') {
            c.set(o.key, o.entry, o.fresh);
            m.set(o.key, o.entry, o.fresh);
          } else if (o.kind === 'get') {
            const want = m.get(o.key);
            const got = c.get(o.key);
            assert.deepEqual(got, want && { canonical: want.entry ? want.entry.canonical : null, dn: want.entry ? want.entry.dn : null, freshUntil: want.freshUntil });
          } else if (o.kind === 'delete') {
            assert.equal(c.delete(o.key), m.map.delete(o.key));
          } else {
            c.clear();
            m.map.clear();
          }
          assert.equal(c.size, m.map.size);
          assert.deepEqual([...c.keysByAge()], [...m.map.keys()]);
        }
        assert.equal(evictions, m.evictions);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('answer cache, stored strings', () => {
  it('gives back keys, canonical addresses and DNs exactly, whatever their characters and length', () => {
    // Stored strings are copied (so they hold no parent string alive); the copy must be exact for
    // ASCII, any other well-formed text, and strings longer than the copy buffer.
    const text = fc.oneof(fc.string({ unit: 'grapheme-ascii', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', minLength: 1000, maxLength: 1100 }));
    fc.assert(
      fc.property(text, text, text, text, (local, canonical, head, tail) => {
        const cache = new AnswerCache(4);
        const key = `${local}@example.com`;
        const dn = `${head},${tail}`;
        cache.set(key, { canonical, dn }, 1e15);
        cache.set(`neg-${key}`, null, 1e15);
        const got = cache.get(key);
        assert.deepEqual(got && { canonical: got.canonical, dn: got.dn }, { canonical: canonical === key ? key : canonical, dn });
        assert.equal(cache.get(`neg-${key}`)?.canonical, null);
        assert.deepEqual([...cache.keysByAge()], [key, `neg-${key}`]);
      }),
      { numRuns: 500 },
    );
  });
});
