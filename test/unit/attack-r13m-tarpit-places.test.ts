/**
 * A flagged client's places in the tarpit (HarvestGuard.hold): at most `maxHeld` answers held
 * back at once, freed as their delays run out; a client not flagged is never limited. The
 * Postfix-level effect is in test/integration/attack-r13m-tarpit-pool.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';

test('a flagged client holds at most maxHeld answers back at once', () => {
  let now = 1_000;
  const guard = new HarvestGuard({ maxUnknown: 0, windowMs: 60_000, maxHeld: 2, now: () => now });
  assert.equal(guard.hold('192.0.2.1', 5_000), true, 'not flagged: no limit');
  assert.equal(guard.recordUnknown('192.0.2.1'), true);
  assert.equal(guard.delayMs('192.0.2.1'), 1_000);
  assert.equal(guard.hold('192.0.2.1', 1_000), true);
  assert.equal(guard.hold('192.0.2.1', 2_000), true);
  assert.equal(guard.hold('192.0.2.1', 1_000), false, 'third at once');
  assert.equal(guard.hold('192.0.2.2', 1_000), true, 'another client');
  now += 1_000; // the first hold has run out
  assert.equal(guard.hold('192.0.2.1', 1_000), true);
  assert.equal(guard.hold('192.0.2.1', 1_000), false);
  assert.equal(new HarvestGuard({ maxUnknown: 1, windowMs: 1 }).maxHeld, 4, 'default');
});
