/**
 * Who is taken for a logged-in sender or for Postfix's local submission, through a real Postfix
 * (policy delegation, and smtpd_milters): only what Postfix itself vouches for. A stranger's
 * XCLIENT is refused by Postfix and a failed AUTH logs nobody in, so its unknown recipients are
 * counted as before; a login ends with the XCLIENT that drops it, within one SMTP session; and a
 * client that an XCLIENT host names "localhost [127.0.0.1]" or "localhost [::1]", port 0
 * (cleanup's pretend client, which is never IPv6) is still an SMTP client whose unknown
 * recipients are refused. Engine: LDIF
 * example.com/example.org (split engine); harvest protection maxUnknown 2, reject.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startFrontendMx, XCLIENT_CF, type FrontendMx } from '../helpers/frontend-mx.js';

/** The replies of one session from `source`; a session Postfix cut short fails with its log. */
async function session(mx: PostfixInstance, source: string, commands: string[]): Promise<string[]> {
  try {
    return await smtpSession(mx.port, commands, source);
  } catch (err) {
    const log = (await mx.maillog()).split('\n').filter((l) => /smtpd|milter/.test(l));
    assert.fail(`session from ${source} ended early: ${(err as Error).message}\n${log.slice(-8).join('\n')}`);
  }
}

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 9));

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: who counts as logged in or local`, () => {
    let fx: FrontendMx | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      // Only 127.0.0.1 (and the client it names) may name clients, the others on loopback are strangers;
      // XCLIENT takes an IPv6 client address only when Postfix speaks IPv6.
      fx = await startFrontendMx(frontend, { mainCf: () => ({ ...XCLIENT_CF, smtpd_authorized_xclient_hosts: '127.0.0.1, 192.0.2.60', inet_protocols: 'all' }) });
      mx = fx.mx;
    });

    after(async () => {
      await fx?.close();
    });

    test("a stranger's XCLIENT LOGIN is refused and a failed AUTH logs nobody in: its unknown recipients are counted", async () => {
      const got = await session(mx!, '127.0.0.3', [
        'EHLO client.rcptgate.test',
        'XCLIENT LOGIN=carol',
        'AUTH PLAIN AGNhcm9sAHdyb25n', // \0carol\0wrong
        'MAIL FROM:<sender@example.com>',
        'RCPT TO:<ghost1@example.com>',
        'RCPT TO:<ghost2@example.com>',
        'RCPT TO:<alice@example.com>',
        'RCPT TO:<ghost3@example.com>',
      ]);
      assert.match(got[1]!, /^550 5\.7\.0 /, got.join('\n'));
      assert.doesNotMatch(got[2]!, /^235 /, got.join('\n'));
      // Two unknown recipients allowed, the third one flags the client.
      assert.deepEqual(codes(got.slice(4)), ['550 5.1.1', '550 5.1.1', '250 2.1.5', '421 4.7.0'], got.join('\n'));
    });

    test('a login dropped by XCLIENT LOGIN=[UNAVAILABLE] in the same SMTP session: the next transaction is counted against the address, not the login', async () => {
      const got = await session(mx!, '127.0.0.1', [
        'EHLO client.rcptgate.test',
        'XCLIENT ADDR=192.0.2.60 LOGIN=carol',
        'EHLO client.rcptgate.test',
        'MAIL FROM:<carol@example.com>',
        'RCPT TO:<typo1@example.com>',
        'RCPT TO:<typo2@example.com>',
        'RSET',
        'XCLIENT LOGIN=[UNAVAILABLE]',
        'EHLO client.rcptgate.test',
        'MAIL FROM:<sender@example.com>',
        'RCPT TO:<ghost1@example.com>',
        'RCPT TO:<ghost2@example.com>',
        'RCPT TO:<ghost3@example.com>',
      ]);
      // Logged in: each typo refused, counted against the login.
      assert.deepEqual(codes(got.slice(4, 6)), ['550 5.1.1', '550 5.1.1'], got.join('\n'));
      assert.match(got[7]!, /^220 /, got.join('\n'));
      // Anonymous again: counted against the address, from nothing; the third refused by harvest protection.
      assert.deepEqual(codes(got.slice(10)), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], got.join('\n'));
    });

    for (const [addr, port] of [['127.0.0.1', '0'], ['127.0.0.1', '[UNAVAILABLE]'], ['IPV6:::1', '0']]) {
      test(`an SMTP client named 'localhost [${addr}]', port ${port} by XCLIENT still gets 550 for unknown recipients`, async () => {
        const got = await session(mx!, '127.0.0.1', [
          'EHLO client.rcptgate.test',
          `XCLIENT NAME=localhost ADDR=${addr} PORT=${port}`,
          'EHLO client.rcptgate.test',
          'MAIL FROM:<sender@example.com>',
          'RCPT TO:<nobody@example.com>',
          'RCPT TO:<alice@example.com>',
          'QUIT',
        ]);
        assert.match(got[1]!, /^220 /, got.join('\n'));
        assert.deepEqual(codes(got.slice(4, 6)), ['550 5.1.1', '250 2.1.5'], got.join('\n'));
      });
    }
  });
}
