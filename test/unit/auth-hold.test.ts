import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AUTH_HOLD_FIRST_MS, AUTH_HOLD_MAX_MS, AuthHold } from '../../src/directory/auth-hold.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';

const refusal = new DirectoryError(ErrorCodes.DIRECTORY_AUTH, 'LDAP bind on ldap://dc1 refused: invalidCredentials');

test('binds pause after a refusal, for twice as long each time up to the cap, and resume once one is accepted', () => {
  let now = 1_000;
  const hold = new AuthHold(() => now);
  assert.equal(hold.check(), undefined, 'nothing refused yet');
  const pauses: number[] = [];
  for (let i = 0; i < 7; i++) {
    pauses.push(hold.refused(refusal));
    const err = hold.check();
    assert.ok(err instanceof DirectoryError && err.code === ErrorCodes.DIRECTORY_AUTH, 'held: an auth error, a configuration problem');
    assert.match(err.message, /invalidCredentials/, 'names the refusal');
    now += pauses[i]! - 1;
    assert.ok(hold.check(), 'still held a millisecond before the end');
    now += 1;
    assert.equal(hold.check(), undefined, 'free at the end of the pause');
  }
  assert.deepEqual(pauses, [1, 2, 4, 8, 15, 15, 15].map((m) => m * 60_000));
  assert.equal(pauses[0], AUTH_HOLD_FIRST_MS);
  assert.equal(Math.max(...pauses), AUTH_HOLD_MAX_MS);
  hold.accepted();
  assert.equal(hold.refused(refusal), AUTH_HOLD_FIRST_MS, 'an accepted bind starts the doubling over');
  hold.accepted();
  assert.equal(hold.check(), undefined, 'and ends a pause');
});

test('a clock that does not move keeps the pause (monotonic time: a wall clock step cannot end it)', () => {
  const hold = new AuthHold(() => 5);
  hold.refused(refusal);
  assert.match(hold.check()!.message, /no bind for 60 s more/);
});
