/**
 * Harvest protection counts a logged-in sender by its login, through a real Postfix (XCLIENT
 * LOGIN: Postfix reports it as sasl_username to the policy server and as {auth_authen} to the
 * milter). A SASL backend that checks passwords against LDAP or AD accepts any case of a login,
 * so a harvester with one stolen password varies the case to get a fresh budget each time: the
 * spellings of one login must share one count. Engine: LDIF example.com/example.org.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { startFrontendMx, XCLIENT_CF, xclientRcpts, type FrontendMx } from '../helpers/frontend-mx.js';

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: one login in any case is one harvester`, () => {
    let fx: FrontendMx | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      fx = await startFrontendMx(frontend, { mainCf: () => XCLIENT_CF });
      mx = fx.mx;
    });

    after(async () => {
      await fx?.close();
    });

    test('a login flagged in lower case is flagged in any other case, from any address', async () => {
      const first = await xclientRcpts(mx!, '192.0.2.61', 'trudy', ['typo1@example.com', 'typo2@example.com', 'typo3@example.com']);
      assert.deepEqual(first.map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], first.join('\n'));
      const refused: string[] = [];
      for (const [i, spelling] of ['Trudy', 'TRUDY', 'tRuDy'].entries()) {
        const r = await xclientRcpts(mx!, `198.51.100.${10 + i}`, spelling, [`probe${i}@example.com`]);
        if (/^421 4\.7\.0 /.test(r[0]!)) refused.push(spelling);
      }
      assert.deepEqual(refused, ['Trudy', 'TRUDY', 'tRuDy'], 'spellings of the flagged login that were answered instead of refused');
      // Another user is not affected by the harvester's count.
      const other = await xclientRcpts(mx!, '192.0.2.61', 'Carol', ['alice@example.com']);
      assert.match(other[0]!, /^250 /, other.join('\n'));
    });
  });
}
