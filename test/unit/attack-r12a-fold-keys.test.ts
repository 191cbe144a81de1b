/**
 * Keys of directory values at a domain with a final sigma: folding a local part maps ς to σ (one
 * letter to every directory), but in a domain IDNA keeps them apart (ελλάς and ελλάσ are two
 * domains). A value's key must be the key of a lookup of the same address, so only local parts
 * are folded. Pure functions: no server stores such a domain in a form slapd accepts (IA5).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { searchPlan } from '../../src/directory/presets.js';
import { addressKey, parseAddress } from '../../src/recipient/address.js';

const keyOfLookup = (address: string): string => {
  const parsed = parseAddress(address);
  assert.ok(parsed.ok, address);
  return parsed.value.address;
};

describe('keys of values at a domain with a final sigma', () => {
  it('a listed value keys as a lookup of it does; a final sigma in the local part folds to σ', () => {
    const plan = searchPlan({ preset: 'openldap', filter: null, matchUserPrincipalName: false });
    const listed = plan.addresses({ dn: 'uid=x', mail: ['Info@ελλάς.example', 'ΟΔΟΣ@ελλάς.example'] }).map(addressKey);
    assert.deepEqual(listed, [keyOfLookup('info@ελλάς.example'), keyOfLookup('οδος@ελλάς.example')]);
    assert.notEqual(keyOfLookup('info@ελλάς.example'), keyOfLookup('info@ελλάσ.example'), 'two domains');
    assert.equal(keyOfLookup('ΟΔΟΣ@example.com'), keyOfLookup('οδος@example.com'), 'one mailbox');
  });
});
