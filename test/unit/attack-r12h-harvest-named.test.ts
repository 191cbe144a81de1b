/**
 * HarvestGuard.firstAsk: the unknown addresses a client named are remembered with its own count,
 * per client and per window, bounded per client. (The guard alone, on an injected clock: the
 * behaviour through real front ends is in attack-r12h-harvest-churn and -spellings.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';

function guard(maxUnknown: number, windowMs = 1000) {
  const clock = { t: 1_000_000 };
  return { g: new HarvestGuard({ maxUnknown, windowMs, action: 'reject', now: () => clock.t }), clock };
}

describe('harvest guard: addresses named again', () => {
  it('counts a repeat once per client and window, whatever other clients name meanwhile', () => {
    const { g, clock } = guard(2);
    assert.equal(g.firstAsk('192.0.2.1', 'ghost@example.com'), true);
    for (let i = 0; i < 90_000; i++) g.firstAsk(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, `other-${i}@example.com`);
    assert.equal(g.firstAsk('192.0.2.1', 'ghost@example.com'), false);
    assert.equal(g.firstAsk('192.0.2.2', 'ghost@example.com'), true, 'another client names it for the first time');
    clock.t += 1000;
    assert.equal(g.firstAsk('192.0.2.1', 'ghost@example.com'), true, 'a new window counts it again');
  });

  it('keeps at most maxUnknown + 1 addresses per client: the oldest named counts again', () => {
    const { g } = guard(2);
    for (const a of ['a@x', 'b@x', 'c@x']) assert.equal(g.firstAsk('c', a), true);
    assert.equal(g.firstAsk('c', 'c@x'), false);
    assert.equal(g.firstAsk('c', 'd@x'), true);
    assert.equal(g.firstAsk('c', 'a@x'), true, 'forgotten early: counted again, never less');
  });

  it('an IPv6 client is one network for repeats too', () => {
    const { g } = guard(2);
    assert.equal(g.firstAsk('2001:db8:1:2::1', 'ghost@example.com'), true);
    assert.equal(g.firstAsk('2001:db8:1:2::99', 'ghost@example.com'), false);
  });
});
