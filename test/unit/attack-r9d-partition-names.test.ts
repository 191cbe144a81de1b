/**
 * AD's non-recipient partitions are ignored only where AD puts them, straight on a DC= naming
 * context; the same first RDN anywhere else is a delegated part of the tree (references.ts).
 * The case with real servers: test/integration/attack-r9d-partition-names.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { referenceMayHoldRecipients } from '../../src/directory/references.js';

test('partition names away from a DC= naming context may hold recipients', () => {
  for (const uri of [
    'ldap://ldap2.example.com/cn=Configuration,ou=people,dc=example,dc=com',
    'ldap://ldap2.example.com/CN=Configuration%2COU=Staff%2CDC=example%2CDC=com',
    'ldap://ldap2.example.com/dc=DomainDnsZones,ou=people,dc=example,dc=com??sub',
    'ldap://ldap2.example.com/dc=ForestDnsZones,o=example',
    'ldap://ldap2.example.com/cn=Configuration',
    'ldap://ldap2.example.com/cn=Configuration,dc=example+ou=x,dc=com',
  ]) {
    assert.equal(referenceMayHoldRecipients(uri), true, uri);
  }
  for (const uri of ['ldap://ad.example.com/CN=Configuration,DC=ad,DC=example,DC=com', 'ldap://x/DC=ForestDnsZones,DC=example,DC=com??base']) {
    assert.equal(referenceMayHoldRecipients(uri), false, uri);
  }
});
