import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAddress } from '../../src/recipient/address.js';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl, parseServedAddress } from '../../src/recipient/engine.js';
import { FakeClock, FakeDirectory } from '../helpers/fake-directory.js';

describe('parseServedAddress', () => {
  const plain = new Set(['example.com', 'xn--bcher-kva.example']);
  const chars = fc.constantFrom(...'aAzZ09.-_+!#$%&\'*/=?^`{|}~"\\ @<>()[],;:é\u0130\u00e9\x00\x7f'.split(''));
  const local = fc.oneof(fc.string({ unit: chars, maxLength: 70 }), fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '+'), maxLength: 70 }));
  const domain = fc.constantFrom('example.com', 'EXAMPLE.com', 'example.com.', 'xn--bcher-kva.example', 'bücher.example', 'other.example', '', '[127.0.0.1]');

  it('answers exactly as parseAddress for any input', () => {
    fc.assert(
      fc.property(local, domain, (l, d) => {
        const input = `${l}@${d}`;
        assert.deepEqual(parseServedAddress(input, plain), parseAddress(input));
      }),
      { numRuns: 5000 },
    );
  });

  it('answers exactly as parseAddress for long and odd inputs', () => {
    for (const input of ['a'.repeat(64) + '@example.com', 'a'.repeat(65) + '@example.com', `${'a.'.repeat(120)}a@example.com`, 'a.@example.com', '.a@example.com', 'a..b@example.com', '@example.com', 'a@', '<a@example.com>']) {
      assert.deepEqual(parseServedAddress(input, plain), parseAddress(input), input);
    }
  });
});

describe('RecipientValidatorImpl.lookupNow', () => {
  function setup() {
    const config = validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } } });
    const directory = new FakeDirectory({ 'alice@example.com': 'Alice@Example.com' });
    const metrics = new Metrics({ defaultMetrics: false });
    const clock = new FakeClock();
    const v = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger(), now: clock.now });
    return { v, directory, metrics, clock };
  }

  it('answers static verdicts and fresh cached answers without a promise, the same as lookup()', async () => {
    const { v, directory } = setup();
    assert.equal(v.lookupNow('alice@example.com', { frontend: 'socketmap' }), undefined, 'not cached yet: the caller must use lookup()');
    const first = await v.lookup('alice@example.com', { frontend: 'socketmap' });
    assert.equal(first.source, 'directory');
    const now = v.lookupNow('alice@example.com', { frontend: 'socketmap' });
    assert.deepEqual(now, await v.lookup('alice@example.com', { frontend: 'socketmap' }));
    assert.equal(now?.source, 'cache');
    assert.equal(now?.canonical, 'Alice@Example.com');
    assert.equal(v.lookupNow('x@elsewhere.example', { frontend: 'socketmap' })?.verdict, 'not_ours');
    assert.equal(v.lookupNow('not an address', { frontend: 'socketmap' })?.verdict, 'invalid');
    assert.equal(directory.callsFor('alice@example.com'), 1);
  });

  it('leaves an expired answer to lookup(), which asks the directory again', async () => {
    const { v, directory, clock } = setup();
    await v.lookup('alice@example.com', { frontend: 'socketmap' });
    clock.advance(3_600_000);
    assert.equal(v.lookupNow('alice@example.com', { frontend: 'socketmap' }), undefined);
    assert.equal((await v.lookup('alice@example.com', { frontend: 'socketmap' })).source, 'directory');
    assert.equal(directory.callsFor('alice@example.com'), 2);
  });

  it('continues a miss from lookupNow() in lookup(): one parse, one rule pass, one cache probe', async () => {
    const { v, directory } = setup();
    const cache = v.answerCache!;
    const find = cache.find.bind(cache);
    let probes = 0;
    cache.find = (key: string) => {
      if (key === 'alice@example.com') probes++;
      return find(key);
    };
    assert.equal(v.lookupNow('alice@example.com', { frontend: 'socketmap' }), undefined);
    const r = await v.lookup('alice@example.com', { frontend: 'socketmap' });
    assert.equal(r.source, 'directory');
    assert.equal(probes, 1);
    assert.equal(directory.callsFor('alice@example.com'), 1);
  });

  it('does not continue a step from another tick (the snapshot or lists may have changed)', async () => {
    const { v } = setup();
    assert.equal(v.lookupNow('bob@example.com', { frontend: 'socketmap' }), undefined);
    await Promise.resolve();
    v.setSnapshot({ get: (a) => (a === 'bob@example.com' ? a : undefined), isFresh: () => true, listedAt: -Infinity, hasDn: () => true });
    assert.equal((await v.lookup('bob@example.com', { frontend: 'socketmap' })).source, 'snapshot');
  });

  it('explains a cached answer with the filter the directory says it would send', async () => {
    const { v } = setup();
    await v.lookup('alice@example.com', { frontend: 'http' });
    const r = await v.lookup('alice@example.com', { frontend: 'http', explain: true });
    assert.equal(r.explain?.cache, 'hit');
    assert.equal(r.explain?.dn, 'uid=alice,dc=test');
    assert.equal(r.explain?.filter, '(mail=alice@example.com)', "the directory's filterFor()");
    assert.equal((await v.lookup('alice@example.com', { frontend: 'http' })).explain, undefined);
  });

  it('counts lookups and cache hits in the metrics like lookup()', async () => {
    const { v, metrics } = setup();
    await v.lookup('alice@example.com', { frontend: 'socketmap' });
    v.lookupNow('alice@example.com', { frontend: 'socketmap' });
    v.lookupNow('alice@example.com', { frontend: 'socketmap' });
    const text = await metrics.registry.metrics();
    assert.match(text, /rcptgate_lookups_total\{frontend="socketmap",verdict="valid"\} 3/);
    assert.match(text, /rcptgate_cache_events_total\{event="hit"\} 2/);
    assert.match(text, /rcptgate_cache_events_total\{event="miss"\} 1/);
    assert.match(text, /rcptgate_lookup_duration_seconds_count\{frontend="socketmap"\} 3/);
    assert.match(text, /rcptgate_cache_entries 1/);
  });
});
