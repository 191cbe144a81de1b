/**
 * The policy front end behind a real Postfix, in every state Postfix asks it: the service is
 * listed in smtpd_recipient_restrictions (RCPT, and VRFY: smtpd runs the recipient
 * restrictions for VRFY too), smtpd_data_restrictions (DATA) and
 * smtpd_end_of_data_restrictions (END-OF-MESSAGE), with one request per policy connection
 * (smtpd_policy_service_request_limit = 1). Engine: LDIF for example.com/example.org (split
 * engine); harvest protection with reject after 2 unknown recipients.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startFrontendMx, type FrontendMx } from '../helpers/frontend-mx.js';

describe('policy delegation behind a real Postfix: VRFY, DATA and END-OF-MESSAGE states', () => {
  let fx: FrontendMx | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    fx = await startFrontendMx('policy', {
      mainCf: (port) => ({
        smtpd_data_restrictions: `check_policy_service inet:127.0.0.1:${port}, permit`,
        smtpd_end_of_data_restrictions: `check_policy_service inet:127.0.0.1:${port}, permit`,
        smtpd_policy_service_request_limit: '1',
        disable_vrfy_command: 'no',
      }),
    });
    mx = fx.mx;
  });

  after(async () => {
    await fx?.close();
  });

  test('VRFY is no oracle and not counted; RCPTs get their verdicts (a trailing dot in the domain too); DATA and end of data pass', async () => {
    const vrfy = ['nobody@example.com', 'ghost1@example.com', 'ghost2@example.com', 'ghost3@example.com', 'alice@example.com'];
    const got = await smtpSession(mx!.port, [
      'EHLO client.rcptgate.test',
      ...vrfy.map((a) => `VRFY ${a}`),
      'MAIL FROM:<sender@client.example>',
      'RCPT TO:<alice@example.com.>',
      'RCPT TO:<nobody@example.com.>',
      'RCPT TO:<dave@example.org>',
      'DATA',
      'Subject: states\r\n\r\nbody\r\n.',
      'QUIT',
    ]);
    const text = got.join('\n');
    // The same answer for a valid and an unknown user: VRFY tells a harvester nothing.
    for (const [i, a] of vrfy.entries()) assert.equal(got[1 + i], `252 2.0.0 ${a}`, text);
    const rcpt = got.slice(1 + vrfy.length + 1);
    assert.match(rcpt[0]!, /^250 /, text);
    assert.match(rcpt[1]!, /^550 5\.1\.1 <nobody@example\.com\.>: Recipient address rejected: User unknown$/, text);
    // Four VRFYs of unknown users before: not counted, so the client is not flagged (no 421).
    assert.match(rcpt[2]!, /^250 /, text);
    assert.match(rcpt[3]!, /^354 /, text);
    assert.match(rcpt[4]!, /^250 2\.0\.0 Ok: queued/, text);
    const queued = await mx!.queuedRecipients();
    assert.ok(queued.includes('alice@example.com') && queued.includes('dave@example.org'), queued.join(','));
  });
});
