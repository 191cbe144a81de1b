/**
 * One policy server listed twice: Postfix's documentation puts check_policy_service in
 * smtpd_recipient_restrictions, and an administrator who also lists it in
 * smtpd_relay_restrictions (evaluated first since Postfix 2.10) has every accepted RCPT asked
 * twice with the same attributes. An unknown recipient is refused by the first answer and asked
 * once; a valid one is asked twice and counts nothing. So harvest protection still flags the
 * client at its third unknown recipient, not earlier. Real Postfix, maxUnknown 2, reject.
 * Engine: LDIF example.com/example.org (split engine).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startFrontendMx, type FrontendMx } from '../helpers/frontend-mx.js';

describe('policy listed in both smtpd_relay_restrictions and smtpd_recipient_restrictions (real Postfix)', () => {
  let fx: FrontendMx | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    fx = await startFrontendMx('policy', { mainCf: (port) => ({ smtpd_relay_restrictions: `check_policy_service inet:127.0.0.1:${port}, permit_mynetworks, reject_unauth_destination`, smtpd_recipient_restrictions: `check_policy_service inet:127.0.0.1:${port}, permit` }) });
    mx = fx.mx;
  });

  after(async () => {
    await fx?.close();
  });

  test('each unknown recipient counts once: the second is refused 550, the third 421', async () => {
    // One RCPT per session (Postfix hangs up after a 421), all from one client address.
    const got: string[] = [];
    for (const rcpt of ['ghost1@example.com', 'alice@example.com', 'ghost2@example.com', 'dave@example.org', 'ghost3@example.com']) {
      const replies = await smtpSession(mx!.port, ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@client.example>', `RCPT TO:<${rcpt}>`], '127.0.0.4');
      got.push(`${rcpt} ${replies[2]}`);
    }
    assert.deepEqual(got.map((r) => r.replace(/^(\S+ \d{3} [\d.]+).*/, '$1')), [
      'ghost1@example.com 550 5.1.1',
      'alice@example.com 250 2.1.5',
      'ghost2@example.com 550 5.1.1',
      'dave@example.org 250 2.1.5',
      'ghost3@example.com 421 4.7.0',
    ], got.join('\n'));
  });
});
