import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Attribute, SearchEntry, type Entry } from 'ldapts';
import { hidesValues, matchBatch } from '../../src/directory/answers.js';
import { searchPlan } from '../../src/directory/presets.js';
import { entryObject } from '../../src/directory/raw-search.js';

/** An attribute as ldapts' parser leaves it: raw buffers, and values as text unless one is not UTF-8. */
function attribute(type: string, raw: (string | Buffer)[]): Attribute {
  const a = new Attribute({ type, values: raw as string[] });
  (a as unknown as { buffers: Buffer[] }).buffers = raw.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)));
  return a;
}

const TYPES = ['mail', 'Mail', 'MAIL', 'mailAlternateAddress', 'mailalternateaddress', 'cn', 'userCertificate;binary', 'proxyAddresses'];
const value = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('bob@example.com', ' Bob@Example.COM ', 'tab@x\t'), fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)));
const attributes = fc.uniqueArray(fc.tuple(fc.constantFrom(...TYPES), fc.array(value, { maxLength: 3 })), { selector: ([t]) => t, maxLength: 4 });
const requested = fc.subarray(['mail', 'mailAlternateAddress', 'MAIL', 'uid']);

describe('entryObject', () => {
  test("gives what ldapts' SearchEntry.toObject gives, for any mix of values, buffers and attribute case", () => {
    fc.assert(
      fc.property(attributes, requested, (attrs, wanted) => {
        const entry = new SearchEntry({ messageId: 1, name: 'uid=x,dc=example,dc=com', attributes: attrs.map(([t, v]) => attribute(t, v)) });
        assert.deepEqual(entryObject(entry, wanted), entry.toObject(wanted, []));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('hidesValues', () => {
  const plan = searchPlan({ preset: 'openldap', filter: null, matchUserPrincipalName: false });
  const text = fc.oneof(fc.constantFrom('bob@example.com', 'BOB@example.com', ' bob@example.com ', 'bob@example.com\t', 'alice@example.com', 'b\u00f6b@example.com', ''), fc.string({ maxLength: 6 }));
  const entry = fc.record({ mail: fc.oneof(text, fc.array(text, { maxLength: 3 })), mailAlternateAddress: fc.oneof(text, fc.array(text, { maxLength: 2 })) });

  test("is matchBatch's unaccounted for the key alone, on any entries", () => {
    fc.assert(
      fc.property(fc.constantFrom('bob@example.com', 'Bob@Example.com', 'alice@example.com', 'b\u00f6b@example.com'), fc.array(entry, { maxLength: 3 }), (key, entries) => {
        const objects = entries.map((e, i) => ({ dn: `uid=${i},dc=example,dc=com`, ...e }) as Entry);
        const expected = key.length > 0 && /^[\x21-\x7e]+$/.test(key) && objects.length > 0 && matchBatch(plan.matchValues!, objects, new Set([key.toLowerCase()])).unaccounted;
        assert.equal(hidesValues(plan, key, objects), expected);
      }),
      { numRuns: 2_000 },
    );
  });

  test('finds an entry returned without the value that matched, and passes one that holds it in other case', () => {
    const holds = { dn: 'uid=bob,dc=example,dc=com', mail: 'Bob@Example.COM' } as Entry;
    const hides = { dn: 'uid=bob,dc=example,dc=com', mail: [] } as unknown as Entry;
    assert.equal(hidesValues(plan, 'bob@example.com', [holds]), false);
    assert.equal(hidesValues(plan, 'bob@example.com', [hides]), true);
    assert.equal(hidesValues(plan, 'bob@example.com', [holds, hides]), true);
  });
});
