import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BreakerDirectory, type BreakerState } from '../../src/directory/breaker.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { FakeClock, FakeDirectory } from '../helpers/fake-directory.js';

function setup(options: { failureThreshold?: number; cooldownMs?: number; maxCooldownMs?: number } = {}) {
  const inner = new FakeDirectory({ 'alice@example.com': 'alice@example.com' });
  const clock = new FakeClock();
  const changes: BreakerState[] = [];
  const breaker = new BreakerDirectory(inner, {
    failureThreshold: 3,
    cooldownMs: 500,
    maxCooldownMs: 2_000,
    ...options,
    now: clock.now,
    onStateChange: (s) => changes.push(s),
  });
  return { inner, clock, breaker, changes };
}

async function failures(breaker: BreakerDirectory, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await assert.rejects(breaker.lookup('alice@example.com'), DirectoryError);
}

const unavailable = (e: unknown) => e instanceof DirectoryError && e.code === ErrorCodes.DIRECTORY_UNAVAILABLE && /circuit open/.test(e.message);

describe('BreakerDirectory', () => {
  test('passes answers through while the directory is healthy', async () => {
    const { breaker, inner } = setup();
    assert.equal((await breaker.lookup('alice@example.com')).entry?.canonical, 'alice@example.com');
    assert.equal((await breaker.lookup('nobody@example.com')).entry, null);
    assert.equal(inner.calls.length, 2);
    assert.equal(breaker.state, 'closed');
  });

  test('opens after the threshold of consecutive failures and then fails without asking the directory', async () => {
    const { breaker, inner, changes } = setup();
    inner.down();
    await failures(breaker, 3);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(changes, ['open']);
    await assert.rejects(breaker.lookup('alice@example.com'), unavailable);
    assert.equal(inner.calls.length, 3, 'an open breaker must not reach the directory');
  });

  test('a success in between resets the failure count', async () => {
    const { breaker, inner } = setup();
    inner.queue('error', 'error', 'found', 'error', 'error');
    for (let i = 0; i < 5; i++) await breaker.lookup('alice@example.com').catch(() => undefined);
    assert.equal(breaker.state, 'closed');
  });

  test('lets exactly one trial through after the cooldown and closes when it succeeds', async () => {
    const { breaker, inner, clock, changes } = setup();
    inner.down();
    await failures(breaker, 3);
    inner.up();
    clock.advance(499);
    await assert.rejects(breaker.lookup('alice@example.com'), unavailable);
    clock.advance(1);
    inner.hold = true;
    const trial = breaker.lookup('alice@example.com');
    assert.equal(breaker.state, 'half_open');
    await assert.rejects(breaker.lookup('bob@example.com'), unavailable, 'only one trial at a time');
    inner.release();
    assert.equal((await trial).entry?.canonical, 'alice@example.com');
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(changes, ['open', 'half_open', 'closed']);
    assert.equal((await breaker.lookup('nobody@example.com')).entry, null);
  });

  test('a failed trial reopens with a doubled cooldown, capped', async () => {
    const { breaker, inner, clock } = setup();
    inner.down();
    await failures(breaker, 3);
    for (const wait of [500, 1_000, 2_000, 2_000]) {
      clock.advance(wait - 1);
      await assert.rejects(breaker.lookup('alice@example.com'), unavailable, `still open ${wait - 1} ms after opening`);
      clock.advance(1);
      const before = inner.calls.length;
      await assert.rejects(breaker.lookup('alice@example.com'), (e) => e instanceof DirectoryError && !/circuit open/.test(e.message));
      assert.equal(inner.calls.length, before + 1, 'the trial reached the directory');
      assert.equal(breaker.state, 'open');
    }
  });

  test('probe always reaches the directory and closes an open breaker', async () => {
    const { breaker, inner } = setup();
    inner.down();
    await failures(breaker, 3);
    await assert.rejects(breaker.probe(), DirectoryError);
    assert.equal(breaker.state, 'open');
    inner.up();
    await breaker.probe();
    assert.equal(breaker.state, 'closed');
    assert.equal((await breaker.lookup('alice@example.com')).entry?.canonical, 'alice@example.com');
  });

  test('our own overload refusals do not open the breaker', async () => {
    const { breaker, inner } = setup();
    inner.down(new DirectoryError(ErrorCodes.DIRECTORY_OVERLOADED, 'too many in flight'));
    await failures(breaker, 10);
    assert.equal(breaker.state, 'closed');
  });

  test('keeps the wrapped directory kind, known domains and close', async () => {
    const inner = new FakeDirectory({}, { knownDomains: ['example.com'] });
    let closed = false;
    inner.close = async () => void (closed = true);
    const breaker = new BreakerDirectory(inner);
    assert.equal(breaker.kind, 'ldap');
    assert.deepEqual(breaker.knownDomains?.(), ['example.com']);
    await breaker.close();
    assert.ok(closed);
    assert.equal(new BreakerDirectory(new FakeDirectory()).knownDomains, undefined);
  });
});
