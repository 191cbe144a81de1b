import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { domainRoot, escapeDnValue } from '../../src/snapshot/changes.js';

describe('change feed helpers', () => {
  test('rebuilds a deleted object\'s RDN value with RFC 4514 escaping', () => {
    assert.equal(escapeDnValue('Doe, Jane'), 'Doe\\, Jane');
    assert.equal(escapeDnValue('#1 a+b=c;<d>"e"\\'), '\\#1 a\\+b\\=c\\;\\<d\\>\\"e\\"\\\\');
    assert.equal(escapeDnValue(' padded '), '\\ padded\\ ');
  });

  test('finds the naming context (DC= suffix) where tombstones live', () => {
    assert.equal(domainRoot('OU=Mail,OU=Staff,DC=ad,DC=example,DC=com'), 'DC=ad,DC=example,DC=com');
    assert.equal(domainRoot('dc=example,dc=com'), 'dc=example,dc=com');
    assert.equal(domainRoot('CN=Users, DC=ad,DC=example'), 'DC=ad,DC=example');
    assert.equal(domainRoot('o=example'), 'o=example');
  });
});
