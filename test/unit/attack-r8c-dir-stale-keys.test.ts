/**
 * An address is looked up key by key: the exact address, then without its sub-address, then
 * `@domain`; the first key found makes it valid. While the directory fails, a key it cannot
 * answer (its cached "no such entry" expired) used to end the lookup in tempfail, even when a
 * later key was known valid in the cache, fresh or within stale-if-error: mail to
 * alice+news@ was deferred while mail to alice@ was accepted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { FakeClock, FakeDirectory } from '../helpers/fake-directory.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

function setup(entries: Record<string, string>) {
  const config = validateConfig({ domains: ['example.com'], cache: { positiveTtl: '1h', negativeTtl: '5m', staleIfError: '24h' } });
  const dir = new FakeDirectory(entries);
  const clock = new FakeClock();
  const v = new RecipientValidatorImpl({ config, directory: dir, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), now: clock.now });
  const ask = (address: string) => v.lookup(address, { frontend: 'http', explain: true });
  return { dir, clock, ask };
}

describe('a later key known valid while the directory cannot answer an earlier one', () => {
  it('a sub-address is valid from the cached answer of its base address, fresh or stale', async () => {
    const { dir, clock, ask } = setup({ 'alice@example.com': 'alice@example.com' });
    assert.equal((await ask('alice+news@example.com')).verdict, 'valid');
    clock.advance(5 * MIN + 1); // the exact key's negative expired; alice@ is fresh for 55 more minutes
    dir.down();
    const fresh = await ask('alice+news@example.com');
    assert.deepEqual([fresh.verdict, fresh.source, fresh.canonical], ['valid', 'cache', 'alice@example.com']);
    assert.deepEqual(fresh.explain?.tried, ['alice+news@example.com', 'alice@example.com']);
    clock.advance(HOUR); // alice@ is now stale, within staleIfError
    const stale = await ask('alice+news@example.com');
    assert.deepEqual([stale.verdict, stale.source, stale.ttlSeconds], ['valid', 'stale', 0]);
  });

  it('an address at a catch-all entry (mail: @example.com) is valid from the cached @domain answer', async () => {
    const { dir, clock, ask } = setup({ '@example.com': 'catchall@example.com' });
    assert.equal((await ask('someone@example.com')).verdict, 'valid');
    clock.advance(5 * MIN + 1);
    dir.down();
    assert.equal((await ask('someone@example.com')).verdict, 'valid');
  });

  it('stays tempfail when no later key is known valid: a cached negative is no answer for the key that failed', async () => {
    const { dir, clock, ask } = setup({});
    assert.equal((await ask('bob+news@example.com')).verdict, 'unknown');
    dir.down();
    // Every key's negative is still fresh: unknown, as before the outage.
    assert.equal((await ask('bob+news@example.com')).verdict, 'unknown');
    clock.advance(5 * MIN + 1);
    const r = await ask('bob+news@example.com');
    assert.equal(r.verdict, 'tempfail');
    // A negative of a later key that is still fresh says nothing of the key the directory could not answer.
    clock.advance(24 * HOUR);
    assert.equal((await ask('bob+news@example.com')).verdict, 'tempfail');
  });

  it('a stale positive past its stale-if-error window does not count', async () => {
    const { dir, clock, ask } = setup({ 'alice@example.com': 'alice@example.com' });
    assert.equal((await ask('alice+news@example.com')).verdict, 'valid');
    dir.down();
    clock.advance(HOUR + 24 * HOUR + 1);
    assert.equal((await ask('alice+news@example.com')).verdict, 'tempfail');
  });
});
