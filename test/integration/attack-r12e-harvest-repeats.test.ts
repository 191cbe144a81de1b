/**
 * Harvest protection counts the unknown addresses a client collects, not how often it repeats
 * one. A monitoring host paging a departed on-call address with every alert, a list server with
 * one stale subscriber, a notification service: each new message names the same unknown
 * recipient again, next to valid ones. Counted per RCPT, such a host was flagged at its third
 * message (maxUnknown 2, reject): 421 for every recipient, the valid ones too, for the window.
 * A harvester learns nothing by asking one address again, and is still flagged at its third
 * distinct unknown address. Through a real Postfix, both front ends; engine: LDIF example.com.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { startFrontendMx, XCLIENT_CF, xclientRcpts, type FrontendMx } from '../helpers/frontend-mx.js';

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 9));

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: one unknown address repeated is one unknown`, () => {
    let fx: FrontendMx | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      fx = await startFrontendMx(frontend, { maxUnknown: 2, mainCf: () => XCLIENT_CF });
      mx = fx.mx;
    });
    after(async () => {
      await fx?.close();
    });

    test('a host repeating one stale address in every message keeps its valid mail flowing; distinct unknowns still flag it', async () => {
      const monitor = '192.0.2.70';
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push(...codes(await xclientRcpts(mx!, monitor, null, ['oncall-old@example.com', 'alice@example.com'])));
      assert.deepEqual(got, Array.from({ length: 6 }, () => ['550 5.1.1', '250 2.1.5']).flat(), got.join('\n'));
      // Its second distinct unknown is still refused as unknown, its third trips the guard.
      assert.deepEqual(codes(await xclientRcpts(mx!, monitor, null, ['typo1@example.com', 'typo2@example.com'])), ['550 5.1.1', '421 4.7.0']);
    });

    test('a harvester is flagged at its third distinct unknown address, repeats or not', async () => {
      const harvester = '192.0.2.71';
      const first = await xclientRcpts(mx!, harvester, null, ['ghost1@example.com', 'ghost1@example.com', 'ghost2@example.com', 'ghost1@example.com', 'ghost3@example.com']);
      assert.deepEqual(codes(first), ['550 5.1.1', '550 5.1.1', '550 5.1.1', '550 5.1.1', '421 4.7.0'], first.join('\n'));
      assert.deepEqual(codes(await xclientRcpts(mx!, harvester, null, ['alice@example.com'])), ['421 4.7.0']);
    });
  });
}
