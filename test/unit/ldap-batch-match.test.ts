import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Entry } from 'ldapts';
import { batchable, matchBatch } from '../../src/directory/answers.js';
import { searchPlan } from '../../src/directory/presets.js';

const openldap = searchPlan({ preset: 'openldap', filter: null, matchUserPrincipalName: false });
const ad = searchPlan({ preset: 'activedirectory', filter: null, matchUserPrincipalName: false });

function keysOf(match: ReturnType<typeof matchBatch>): Record<string, string[]> {
  return Object.fromEntries([...match.byKey].map(([k, entries]) => [k, entries.map((e) => e.dn)]));
}

describe('batched search answers matched back to their keys', () => {
  test('only printable ASCII keys without spaces ride in a batch', () => {
    assert.equal(batchable('bob@example.com'), true);
    assert.equal(batchable('Bob+tag@Example.com'), true);
    for (const key of ['ålice@example.com', '\u212Aate@example.com', '"bob smith"@example.com', 'tab\t@example.com', '']) {
      assert.equal(batchable(key), false, JSON.stringify(key));
    }
  });

  test('a configured filter is never batched (its comparisons are unknown)', () => {
    assert.equal(searchPlan({ preset: 'openldap', filter: '(uid=%u)', matchUserPrincipalName: false }).matchValues, null);
    assert.equal(searchPlan({ preset: 'activedirectory', filter: '(mail=%s)', matchUserPrincipalName: false }).matchValues, null);
  });

  test('mail and mailAlternateAddress match case-insensitively for ASCII, each entry to every key it answers', () => {
    const entries: Entry[] = [
      { dn: 'uid=alice', mail: ['Alice@example.com', 'alice.smith@example.com'], mailAlternateAddress: 'ally@example.com' },
      { dn: 'uid=bob', mail: ' bob@example.com ' },
    ];
    const match = matchBatch(openldap.matchValues!, entries, new Set(['alice@example.com', 'ally@example.com', 'bob@example.com', 'nobody@example.com']));
    assert.deepEqual(keysOf(match), { 'alice@example.com': ['uid=alice'], 'ally@example.com': ['uid=alice'], 'bob@example.com': ['uid=bob'] });
    assert.equal(match.unaccounted, false);
  });

  test('an entry whose values fold alike (mail and an alias in other case) is listed once per key', () => {
    const entries: Entry[] = [{ dn: 'uid=bob', mail: ['Bob@example.com', 'bob@example.com'], mailAlternateAddress: ['BOB@EXAMPLE.COM', 'robert@example.com'] }];
    const match = matchBatch(openldap.matchValues!, entries, new Set(['bob@example.com', 'robert@example.com']));
    assert.deepEqual(keysOf(match), { 'bob@example.com': ['uid=bob'], 'robert@example.com': ['uid=bob'] });
  });

  test('a non-ASCII value never matches an ASCII key, so the entry is unaccounted (keys go singly)', () => {
    const match = matchBatch(openldap.matchValues!, [{ dn: 'uid=kelvin', mail: '\u212Aate@example.com' }], new Set(['kate@example.com']));
    assert.deepEqual(keysOf(match), {});
    assert.equal(match.unaccounted, true);
  });

  test('AD: smtp: and SMTP: proxy addresses and mail match; X500 and other prefixes do not', () => {
    const entries: Entry[] = [
      { dn: 'CN=Ann', proxyAddresses: ['SMTP:ann@example.com', 'smtp:a.nn@example.com', 'X500:/o=x/cn=bob@example.com'], mail: 'ann@example.com' },
      { dn: 'CN=Cy', proxyAddresses: 'sip:cy@example.com', mail: 'CY@example.com' },
    ];
    const keys = new Set(['ann@example.com', 'a.nn@example.com', 'bob@example.com', 'cy@example.com']);
    const match = matchBatch(ad.matchValues!, entries, keys);
    assert.deepEqual(keysOf(match), { 'ann@example.com': ['CN=Ann'], 'a.nn@example.com': ['CN=Ann'], 'cy@example.com': ['CN=Cy'] });
    assert.equal(match.unaccounted, false);
  });
});
