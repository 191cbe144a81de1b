/**
 * Harvest protection no longer counts one unknown address a client names again. A harvester must
 * not turn that into a way out of the limit: other spellings of an address (upper case, a
 * sub-address) still cost it a count each, and its valid mail is refused once flagged. (Postfix
 * itself passes "ghost"@ and ghost@example.com. on as ghost@example.com: one address, rightly
 * counted once.) Through a real Postfix asking the policy and milter
 * front ends (maxUnknown 2, reject); engine: LDIF example.com.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFrontendMx, XCLIENT_CF, xclientRcpts, type FrontendMx } from '../helpers/frontend-mx.js';

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 9));

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: other spellings of one unknown address still count`, () => {
    let fx: FrontendMx | undefined;

    before(async () => {
      fx = await startFrontendMx(frontend, { maxUnknown: 2, mainCf: () => XCLIENT_CF });
    });
    after(async () => {
      await fx?.close();
    });

    for (const [name, spellings] of [
      ['case', ['ghost@example.com', 'Ghost@example.com', 'GHOST@example.com']],
      ['sub-address', ['ghost@example.com', 'ghost+a@example.com', 'ghost+b@example.com']],
    ] as const) {
      test(`${name}: the third spelling flags the client, then its valid mail is refused`, async () => {
        const client = `192.0.2.${80 + name.length}`;
        const got = codes(await xclientRcpts(fx!.mx, client, null, [...spellings]));
        assert.deepEqual(got, ['550 5.1.1', '550 5.1.1', '421 4.7.0'], got.join(' | '));
        assert.deepEqual(codes(await xclientRcpts(fx!.mx, client, null, ['alice@example.com'])), ['421 4.7.0']);
      });
    }
  });
}
