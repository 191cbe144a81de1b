/**
 * Which continuation references make a lookup's "found nothing" partial (references.ts): every
 * one but those to Active Directory's configuration and DNS partitions, however the server
 * spells the URL. The cases with a real server are in
 * test/integration/attack-r9b-dir-referrals.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { recipientReference, referenceMayHoldRecipients } from '../../src/directory/references.js';

describe('continuation references', () => {
  test("AD's non-recipient partitions are ignored in any spelling a DC or Samba sends", () => {
    for (const uri of [
      'ldap://ad.example.com/CN=Configuration,DC=ad,DC=example,DC=com',
      'ldap://ad.example.com/cn=configuration,dc=ad,dc=example,dc=com??sub',
      'ldap://DomainDnsZones.ad.example.com/DC=DomainDnsZones,DC=ad,DC=example,DC=com',
      'ldaps://ForestDnsZones.ad.example.com:636/DC=ForestDnsZones%2CDC=ad%2CDC=example%2CDC=com',
      'ldap://ad.example.com/DC%3DDomainDnsZones,DC=ad,DC=example,DC=com',
      'ldap://ad.example.com/CN = Configuration,DC=ad,DC=example,DC=com',
    ]) {
      assert.equal(referenceMayHoldRecipients(uri), false, uri);
    }
  });

  test('any other reference may hold recipients, also one that cannot be read', () => {
    for (const uri of [
      'ldap://child.ad.example.com/DC=child,DC=ad,DC=example,DC=com',
      'ldap://127.0.0.1:3890/ou=partners,ou=people,dc=example,dc=com??sub',
      'ldap://ldap2.example.com/cn=Configuration\\, old,ou=people,dc=example,dc=com',
      'ldap://ldap2.example.com/ou=Configuration,dc=example,dc=com',
      'ldap://ldap2.example.com/',
      'ldap://ldap2.example.com/%E0%A4%A',
      'not a url',
    ]) {
      assert.equal(referenceMayHoldRecipients(uri), true, uri);
    }
  });

  test('the first reference that may hold recipients is the one named', () => {
    const ignored = 'ldap://ad.example.com/CN=Configuration,DC=ad,DC=example,DC=com';
    const child = 'ldap://child.ad.example.com/DC=child,DC=ad,DC=example,DC=com';
    assert.equal(recipientReference([ignored, child, 'ldap://x/ou=y']), child);
    assert.equal(recipientReference([ignored]), undefined);
    assert.equal(recipientReference([]), undefined);
  });
});
