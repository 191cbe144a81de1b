import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { OrFilter, SearchRequest } from 'ldapts';
import { expandFilter, parseFilter } from '../../src/directory/filter.js';
import { activeDirectoryFilter } from '../../src/directory/presets.js';
import { DEREF_ALIASES, LookupEncoder, type LookupSearchShape } from '../../src/directory/search-encoder.js';

const SHAPE: LookupSearchShape = { baseDN: 'ou=people,dc=example,dc=com', scope: 'sub', attributes: ['mail', 'mailAlternateAddress'], timeLimit: 5 };

/** What ldapts itself sends for the same search, the filter built from the expanded template. */
function reference(template: string, shape: LookupSearchShape, messageId: number, keys: readonly string[], sizeLimit: number): string {
  const filters = keys.map((k) => parseFilter(expandFilter(template, k)));
  const filter = filters.length === 1 ? filters[0]! : new OrFilter({ filters });
  const request = new SearchRequest({ messageId, ...shape, attributes: [...shape.attributes], filter, sizeLimit, derefAliases: DEREF_ALIASES });
  return request.write().toString('hex');
}

const TEMPLATES = [
  '(|(mail=%s)(mailAlternateAddress=%s))',
  activeDirectoryFilter(false),
  activeDirectoryFilter(true),
  '(&(uid=%u)(associatedDomain=%d))',
  '(mail=*%u*)',
  '(&(mail=%u@%d)(description=100%%))',
  '(cn:dn:2.4.6.8.10:=%u)',
  '(mail=\\c3\\a9%s)',
];
const KEYS = ['bob@example.com', 'Bob+Tag@Example.com', 'ålice@bücher.example', '*)(mail=*@x', 'a\\2ab@x', 'qz1rcptgatelocalqz1@qz1rcptgatedomainqz1.invalid'];

describe('LookupEncoder', () => {
  test('writes exactly the bytes ldapts writes, for every preset and custom template', () => {
    for (const template of TEMPLATES) {
      const encoder = new LookupEncoder(template, SHAPE);
      assert.equal(encoder.direct, true, template);
      for (const key of KEYS) assert.equal(encoder.encode(42, [key], 16).toString('hex'), reference(template, SHAPE, 42, [key], 16), `${template} ${key}`);
    }
  });

  test('writes batches exactly, across every length form (short, 1, 2 and 3 length octets)', () => {
    const encoder = new LookupEncoder(TEMPLATES[0]!, SHAPE);
    for (const n of [2, 3, 40, 300, 2000]) {
      const keys = Array.from({ length: n }, (_, i) => `user${i}@example.com`);
      // Message IDs and size limits of every integer width.
      for (const [id, size] of [[1, 32], [200, 4800], [70_000, 32_000], [2_000_000_000, 16 * n]] as const) {
        assert.equal(encoder.encode(id, keys, size).toString('hex'), reference(TEMPLATES[0]!, SHAPE, id, keys, size), `${n} keys, id ${id}`);
      }
    }
  });

  test('writes exactly the bytes ldapts writes for arbitrary addresses (property)', () => {
    const encoders = TEMPLATES.map((t) => [t, new LookupEncoder(t, { ...SHAPE, scope: 'one', timeLimit: 30 })] as const);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 20 })), { minLength: 1, maxLength: 4 }), (parts) => {
        const keys = parts.map(([local, domain]) => `${local}@${domain}`);
        for (const [template, encoder] of encoders) {
          assert.equal(encoder.encode(9, keys, 64).toString('hex'), reference(template, { ...SHAPE, scope: 'one', timeLimit: 30 }, 9, keys, 64));
        }
      }),
      { numRuns: 200 },
    );
  });

  test('leaves to ldapts what it cannot write exactly: a placeholder outside a value, an address without both parts', () => {
    const odd = '(qz1rcptgateaddressqz1=%s)';
    const encoder = new LookupEncoder(odd, SHAPE);
    assert.equal(encoder.direct, false);
    assert.equal(encoder.encode(5, ['a@b'], 16).toString('hex'), reference(odd, SHAPE, 5, ['a@b'], 16));
    const substring = new LookupEncoder('(mail=*%u*%d)', SHAPE);
    assert.equal(substring.direct, true);
    for (const key of ['noat', 'x@', '@y']) assert.equal(substring.encode(5, [key], 16).toString('hex'), reference('(mail=*%u*%d)', SHAPE, 5, [key], 16), key);
  });
});
