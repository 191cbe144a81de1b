import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonical, routeOn } from '../../src/gate/postfix-address.js';
import { servedTarget } from '../../src/gate/source-route.js';

// Through a real Postfix: test/integration/policy-postfix.test.ts and milter-postfix.test.ts.
describe('addresses as Postfix routes them', () => {
  it('reads a local part that routes on: last "@", else first "!", else last "%"', () => {
    assert.deepEqual(routeOn('a@b@example.com'), { local: 'a@b', domain: 'example.com' });
    assert.deepEqual(routeOn('example.com!relay!nobody'), { local: 'relay!nobody', domain: 'example.com' });
    assert.deepEqual(routeOn('nobody%x%example.com'), { local: 'nobody%x', domain: 'example.com' });
    assert.equal(routeOn('nobody'), null);
  });

  it('writes the internal form as Postfix does: quoted where needed, an empty local part as ""', () => {
    assert.equal(canonical('a b@example.com'), '"a b"@example.com');
    assert.equal(canonical('@example.com'), '""@example.com');
    assert.equal(canonical('alice@example.com'), 'alice@example.com');
    assert.equal(canonical('example.com'), 'example.com');
  });

  const served = (d: string) => d === 'example.com';
  it('judges a source-routed recipient by the served address it routes on to', () => {
    assert.equal(servedTarget('"nobody@example.com"@[127.0.0.1]', served), 'nobody@example.com');
    assert.equal(servedTarget('"nobody%example.com"@localhost', served), 'nobody@example.com');
    assert.equal(servedTarget('"example.com!nobody"@localhost', served), 'nobody@example.com');
    assert.equal(servedTarget('"no body%example.com"@localhost', served), '"no body"@example.com');
  });
  it('hands on an inner address in a served domain even when its syntax is bad, so it is refused for it', () => {
    assert.equal(servedTarget('"a..b%example.com"@localhost', served), 'a..b@example.com');
  });
  it('leaves everything else as it is', () => {
    assert.equal(servedTarget('nobody@example.org', served), 'nobody@example.org');
    assert.equal(servedTarget('"nobody%example.org"@localhost', served), '"nobody%example.org"@localhost');
    assert.equal(servedTarget('"a..b%example.org"@localhost', served), '"a..b%example.org"@localhost');
    assert.equal(servedTarget('"!nobody"@localhost', served), '"!nobody"@localhost');
  });
});

describe('plain addresses (the front ends skip the full parse for them)', () => {
  it('are exactly the ones parseAddress accepts unchanged among simple forms', async () => {
    const { isPlainAddress } = await import('../../src/gate/postfix-address.js');
    const { parseAddress } = await import('../../src/recipient/address.js');
    for (const a of ['alice@example.com', 'a.b+tag@sub.example.com', 'x=y@example.com.', 'A_B-1@EXAMPLE.COM']) {
      assert.ok(isPlainAddress(a), a);
      assert.ok(parseAddress(a).ok, a);
    }
    for (const a of ['.a@example.com', 'a..b@example.com', 'a.@example.com', 'a@b@example.com', '"a"@example.com', 'a%b@example.com', 'a!b@example.com', 'a@ex ample.com', 'a@']) {
      assert.ok(!isPlainAddress(a), a);
    }
  });
});
