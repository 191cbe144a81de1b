/**
 * The DN an incremental sync rebuilds from a Windows DC's msDS-LastKnownRDN must be spelled as the
 * DC lists the entry, or the deleted entry is never found in the snapshot. Expected spellings are
 * those a real Samba DC listed (test/integration/attack-r13n-ad-deleted-escaped-dn.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeAdDnValue } from '../../src/snapshot/changes.js';

describe('escapeAdDnValue', () => {
  test('spells values as Active Directory lists them', () => {
    const listed: Array<[string, string]> = [
      ['Plain Name', 'Plain Name'],
      ['Room #2', 'Room \\#2'],
      ['#Hash first', '\\#Hash first'],
      ['Sales; Ops', 'Sales\\3B Ops'],
      ['a=b', 'a\\3Db'],
      ['Doe, Jane', 'Doe\\, Jane'],
      ['Plus+Minus "Q"', 'Plus\\+Minus \\"Q\\"'],
      ['line\nbreak', 'line\\0Abreak'],
      [' padded ', '\\ padded\\ '],
    ];
    for (const [value, dn] of listed) assert.equal(escapeAdDnValue(value), dn, value);
  });
});
