import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expandFilter, parseFilter } from '../../src/directory/filter.js';
import { generalizedTime, searchPlan } from '../../src/directory/presets.js';

describe('openldap preset', () => {
  const plan = searchPlan({ preset: 'openldap', filter: null, matchUserPrincipalName: false });

  test('matches mail and mailAlternateAddress, lists every entry with either', () => {
    assert.equal(plan.lookupFilter, '(|(mail=%s)(mailAlternateAddress=%s))');
    assert.equal(plan.listFilter, '(|(mail=*)(mailAlternateAddress=*))');
    assert.deepEqual(plan.attributes, ['mail', 'mailAlternateAddress']);
  });

  test('canonical is the first mail value; addresses are every value lowercased once', () => {
    const entry = { dn: 'uid=a', mail: ['Alice@Example.com', 'alice.smith@example.com'], mailAlternateAddress: 'ALICE@example.com' };
    assert.equal(plan.canonical(entry), 'Alice@Example.com');
    assert.deepEqual(plan.addresses(entry), ['alice@example.com', 'alice.smith@example.com']);
    assert.equal(plan.canonical({ dn: 'uid=b', MAIL: 'b@example.com' }), 'b@example.com', 'attribute names compare case-insensitively');
    assert.equal(plan.canonical({ dn: 'uid=c', mail: [] }), null);
  });

  test('reads values alike under the requested spelling and any other: text and Buffers, empty values dropped', () => {
    for (const name of ['mail', 'Mail', 'MAIL']) {
      const entry = { dn: 'uid=d', [name]: [Buffer.from('Dé@example.com'), '', 'd2@example.com'] };
      assert.deepEqual(plan.addresses(entry), ['dé@example.com', 'd2@example.com'], name);
      assert.equal(plan.canonical(entry), 'Dé@example.com', name);
    }
    assert.equal(plan.canonical({ dn: 'uid=e', mail: '', mailAlternateAddress: 'e@example.com' }), 'e@example.com');
  });

  test('changedSince uses modifyTimestamp in GeneralizedTime', () => {
    assert.equal(plan.changedSinceClause(new Date('2024-01-31T23:59:59.500Z')), '(modifyTimestamp>=20240131235959Z)');
    assert.equal(generalizedTime(new Date('2000-02-03T04:05:06Z')), '20000203040506Z');
  });

  test('a configured filter replaces the lookup filter and its list form follows', () => {
    const custom = searchPlan({ preset: 'openldap', filter: '(&(mail=%s)(accountStatus=active))', matchUserPrincipalName: false });
    assert.equal(custom.lookupFilter, '(&(mail=%s)(accountStatus=active))');
    assert.equal(custom.listFilter, '(&(mail=*)(accountStatus=active))');
  });
});

describe('activedirectory preset', () => {
  const plan = searchPlan({ preset: 'activedirectory', filter: null, matchUserPrincipalName: false });

  test('matches mail and smtp proxy addresses of enabled users, groups (dynamic ones too), contacts and public folders', () => {
    const filter = expandFilter(plan.lookupFilter, 'bob@example.com');
    assert.equal(
      filter,
      '(&(|(objectClass=user)(objectClass=group)(objectClass=msExchDynamicDistributionList)(objectClass=contact)(objectClass=publicFolder))' +
        '(|(mail=bob@example.com)(proxyAddresses=smtp:bob@example.com))' +
        '(|(!(userAccountControl:1.2.840.113556.1.4.803:=2))(msExchRecipientTypeDetails=2)(msExchRecipientTypeDetails=4)(msExchRecipientTypeDetails=16)(msExchRecipientTypeDetails=32)' +
        '(msExchRecipientTypeDetails=8589934592)(msExchRecipientTypeDetails=17179869184)(msExchRecipientTypeDetails=34359738368)))',
    );
    parseFilter(filter);
    assert.doesNotMatch(plan.lookupFilter, /userPrincipalName/);
  });

  test('userPrincipalName only when configured', () => {
    const upn = searchPlan({ preset: 'activedirectory', filter: null, matchUserPrincipalName: true });
    assert.match(upn.lookupFilter, /\(userPrincipalName=%s\)/);
    assert.ok(upn.attributes.includes('userPrincipalName'));
    assert.deepEqual(upn.addresses({ dn: 'cn=x', userPrincipalName: 'X@AD.example.com' }), ['x@ad.example.com']);
  });

  test('the list filter keeps the class and disabled clauses', () => {
    assert.equal(
      plan.listFilter,
      '(&(|(objectClass=user)(objectClass=group)(objectClass=msExchDynamicDistributionList)(objectClass=contact)(objectClass=publicFolder))' +
        '(|(mail=*)(proxyAddresses=smtp:*))' +
        '(|(!(userAccountControl:1.2.840.113556.1.4.803:=2))(msExchRecipientTypeDetails=2)(msExchRecipientTypeDetails=4)(msExchRecipientTypeDetails=16)(msExchRecipientTypeDetails=32)' +
        '(msExchRecipientTypeDetails=8589934592)(msExchRecipientTypeDetails=17179869184)(msExchRecipientTypeDetails=34359738368)))',
    );
    parseFilter(plan.listFilter);
  });

  test('canonical is the SMTP: proxy address, else mail; addresses are every smtp: address plus mail', () => {
    const entry = { dn: 'cn=Bob', mail: 'bob@example.com', proxyAddresses: ['smtp:b@example.com', 'SMTP:Bob.Jones@example.com', 'X400:c=US;a= ;', 'sip:bob@example.com'] };
    assert.equal(plan.canonical(entry), 'Bob.Jones@example.com');
    assert.deepEqual(plan.addresses(entry), ['b@example.com', 'bob.jones@example.com', 'bob@example.com']);
    assert.equal(plan.canonical({ dn: 'cn=C', mail: 'c@example.com', proxyAddresses: 'smtp:c2@example.com' }), 'c@example.com');
  });

  test('the OpenLDAP preset matches mail and mailAlternateAddress', () => {
    assert.equal(searchPlan({ preset: 'openldap', filter: null, matchUserPrincipalName: false }).lookupFilter, '(|(mail=%s)(mailAlternateAddress=%s))');
  });
});
