/**
 * Policy delegation behind a real Postfix when the client sends a long EHLO argument. smtpd
 * passes it on as `helo_name=` in every policy request, as it came: with Postfix's default
 * line_length_limit (2,048) the argument can be 2,043 bytes and the attribute line 2,053. The
 * policy decoder refused lines over 2,048 bytes, so the whole request failed and every recipient
 * of that session, valid or not, got "451 4.3.5 Server configuration problem" (and no unknown
 * recipient was counted for harvest protection). An over-long value is now kept cut and the
 * recipient is judged as usual. Engine: `rcptgate serve`'s app on the bundled example directory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

describe('policy delegation behind a real Postfix, long client-chosen values', () => {
  let app: App | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    requirePostfixTools();
    app = await startApp({ listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null } });
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${app.addresses.policy!.port}, permit`,
        smtpd_error_sleep_time: '0',
      },
    });
  });

  after(async () => {
    await mx?.close();
    await app?.close();
  });

  test('an EHLO argument at the SMTP line limit: a valid recipient gets 250, an unknown one 550 5.1.1', async () => {
    // "EHLO " + 2,043 bytes = 2,048, Postfix's default line_length_limit: smtpd takes it whole.
    const helo = `${'a'.repeat(2_043 - '.example'.length)}.example`;
    const sessions: Array<[string, string[]]> = [
      ['at the line limit', [`EHLO ${helo}`]],
      // Over the limit: smtpd keeps the first 2,048 bytes of the line and warns.
      ['over the line limit', [`EHLO ${helo}${'b'.repeat(3_000)}`]],
    ];
    for (const [name, ehlo] of sessions) {
      const replies = await smtpSession(mx!.port, [...ehlo, 'MAIL FROM:<sender@example.net>', 'RCPT TO:<alice@example.com>', 'RCPT TO:<nobody@example.com>', 'QUIT']);
      assert.match(replies[0]!, /^250 /, `${name}: EHLO -> ${replies[0]}`);
      assert.match(replies[2]!, /^250 /, `${name}: RCPT TO:<alice@example.com> -> ${replies[2]}`);
      assert.match(replies[3]!, /^550 5\.1\.1 <nobody@example\.com>: Recipient address rejected: User unknown$/, `${name}: RCPT TO:<nobody@example.com> -> ${replies[3]}`);
    }
    const log = await mx!.maillog();
    assert.doesNotMatch(log, /problem talking to server/, 'Postfix reported no policy server failure');
    const errors = (await app!.metrics.protocolErrors.get()).values.find((v) => v.labels.frontend === 'policy')?.value ?? 0;
    assert.equal(errors, 0, 'no policy request was refused as malformed');
  });
});
