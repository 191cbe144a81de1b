import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AUTH_HOLD_FIRST_MS, AUTH_HOLD_MAX_MS, AuthHold } from '../../src/directory/auth-hold.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';

const URLS = ['ldap://dc1', 'ldap://dc2'];
const refusal = new DirectoryError(ErrorCodes.DIRECTORY_AUTH, 'LDAP bind on ldap://dc1 refused: invalidCredentials');

test('binds pause after a refusal, for twice as long each time up to the cap, and resume once one is accepted', () => {
  let now = 1_000;
  const hold = new AuthHold(() => now);
  assert.equal(hold.check(URLS), undefined, 'nothing refused yet');
  const pauses: number[] = [];
  for (let i = 0; i < 7; i++) {
    pauses.push(hold.refused(refusal, URLS));
    const err = hold.check(URLS);
    assert.ok(err instanceof DirectoryError && err.code === ErrorCodes.DIRECTORY_AUTH, 'held: an auth error, a configuration problem');
    assert.match(err.message, /invalidCredentials/, 'names the refusal');
    now += pauses[i]! - 1;
    assert.ok(hold.check(URLS), 'still held a millisecond before the end');
    now += 1;
    assert.equal(hold.check(URLS), undefined, 'free at the end of the pause');
  }
  assert.deepEqual(pauses, [1, 2, 4, 8, 15, 15, 15].map((m) => m * 60_000));
  assert.equal(pauses[0], AUTH_HOLD_FIRST_MS);
  assert.equal(Math.max(...pauses), AUTH_HOLD_MAX_MS);
  hold.accepted('ldap://dc1');
  assert.equal(hold.refused(refusal, URLS), AUTH_HOLD_FIRST_MS, 'an accepted bind starts the doubling over');
  hold.accepted('ldap://dc1');
  assert.equal(hold.check(URLS), undefined, 'and ends a pause');
});

test('a clock that does not move keeps the pause (monotonic time: a wall clock step cannot end it)', () => {
  const hold = new AuthHold(() => 5);
  hold.refused(refusal, URLS);
  assert.match(hold.check(URLS)!.message, /no bind for 60 s more/);
});

test('only the servers that refused are held: another, down when they refused, is bound as soon as it is back', () => {
  let now = 0;
  const hold = new AuthHold(() => now);
  assert.equal(hold.refused(refusal, ['ldap://dc1']), AUTH_HOLD_FIRST_MS);
  assert.deepEqual(hold.usable(URLS), ['ldap://dc2'], 'dc2 did not refuse');
  assert.equal(hold.check(URLS), undefined, 'a connection may still be opened to dc2');
  assert.ok(hold.check(['ldap://dc1']), 'failback to dc1 alone waits for the pause');
  hold.accepted('ldap://dc2');
  assert.ok(hold.check(['ldap://dc1']), 'dc2 accepting does not end the pause of dc1');
  assert.equal(hold.refused(refusal, ['ldap://dc2']), 2 * AUTH_HOLD_FIRST_MS, 'a refusal while dc1 is held doubles');
  assert.ok(hold.check(URLS), 'both held: no bind at all');
  now += 2 * AUTH_HOLD_FIRST_MS;
  assert.deepEqual(hold.usable(URLS), URLS, 'both free at the end of their pauses');
  hold.accepted('ldap://dc1');
  assert.equal(hold.refused(refusal, URLS), AUTH_HOLD_FIRST_MS, 'accepted with none held: the doubling starts over');
});
