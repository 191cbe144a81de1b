/**
 * Harvest protection and authenticated senders, through a real Postfix (policy delegation, and
 * smtpd_milters), clients named with XCLIENT (ADDR, LOGIN: Postfix then reports the login as
 * sasl_username to the policy server and as {auth_authen} to the milter, as after SMTP AUTH).
 * A logged-in user is counted by its login, not its address: the address it sends from may be
 * shared (an office NAT, a mobile carrier's CGNAT) with a client that was flagged, and its typos
 * must not flag the others behind that address; a stolen login used to harvest is still flagged,
 * from any address. Engine: LDIF example.com/example.org (split engine).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { startFrontendMx, XCLIENT_CF, xclientRcpts, type FrontendMx } from '../helpers/frontend-mx.js';

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: authenticated senders and harvest protection`, () => {
    let fx: FrontendMx | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      fx = await startFrontendMx(frontend, { mainCf: () => XCLIENT_CF });
      mx = fx.mx;
    });

    after(async () => {
      await fx?.close();
    });

    test('a logged-in user sending from the address of a flagged harvester is answered, not refused', async () => {
      const shared = '192.0.2.50';
      assert.deepEqual((await xclientRcpts(mx!, shared, null, ['ghost1@example.com', 'ghost2@example.com'])).map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1']);
      const third = await xclientRcpts(mx!, shared, null, ['ghost3@example.com']);
      assert.match(third[0]!, /^421 4\.7\.0 /, third.join('\n'));
      // The anonymous client stays refused; the user logged in from the same address is not.
      const user = await xclientRcpts(mx!, shared, 'carol', ['alice@example.com', 'typo@example.com', 'dave@example.org']);
      assert.match(user[0]!, /^250 /, user.join('\n'));
      assert.match(user[1]!, /^550 5\.1\.1 /, user.join('\n'));
      assert.match(user[2]!, /^250 /, user.join('\n'));
      const again = await xclientRcpts(mx!, shared, null, ['alice@example.com']);
      assert.match(again[0]!, /^421 4\.7\.0 /, again.join('\n'));
    });

    test("a logged-in user's unknown recipients are counted against its login, from any address, not against the address", async () => {
      const office = '192.0.2.51';
      const user = await xclientRcpts(mx!, office, 'mallory', ['typo1@example.com', 'typo2@example.com', 'typo3@example.com']);
      assert.deepEqual(user.map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], user.join('\n'));
      // The login is flagged wherever it sends from (stolen credentials rotating addresses)…
      const elsewhere = await xclientRcpts(mx!, '198.51.100.7', 'mallory', ['alice@example.com']);
      assert.match(elsewhere[0]!, /^421 4\.7\.0 /, elsewhere.join('\n'));
      // …while an anonymous client and another user at the office start from nothing.
      const other = await xclientRcpts(mx!, office, null, ['ghost1@example.com', 'alice@example.com']);
      assert.deepEqual(other.map((r) => r.slice(0, 9)), ['550 5.1.1', '250 2.1.5'], other.join('\n'));
      const colleague = await xclientRcpts(mx!, office, 'carol', ['alice@example.com']);
      assert.match(colleague[0]!, /^250 /, colleague.join('\n'));
    });
  });
}
