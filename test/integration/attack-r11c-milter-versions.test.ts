/**
 * The milter front end behind real Postfix instances speaking each milter_protocol it offers
 * (2, 3, 4, 6): negotiation (we ask only for skips the version offers), one transaction with
 * valid, unknown and undecidable recipients each answered on its own, a second message in the
 * same session (RSET: SMFIC_ABORT) taken whole, and no milter warning in Postfix's log. Engine:
 * LDIF for example.com/example.org, a stopped real slapd for example.net (split engine).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startFrontendMx, type FrontendMx } from '../helpers/frontend-mx.js';

for (const version of ['2', '3', '4', '6']) {
  describe(`milter behind a real Postfix with milter_protocol = ${version}`, () => {
    let fx: FrontendMx | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      fx = await startFrontendMx('milter', { maxUnknown: 20, mainCf: () => ({ milter_protocol: version }) });
      mx = fx.mx;
    });

    after(async () => {
      await fx?.close();
    });

    test('each RCPT of a transaction gets its own verdict, in two messages of one session', async () => {
      const got = await smtpSession(mx!.port, [
        'EHLO client.rcptgate.test',
        'MAIL FROM:<s@client.example>',
        'RCPT TO:<nobody@example.com>',
        'RCPT TO:<alice@example.com>',
        'RCPT TO:<someone@example.net>',
        'RCPT TO:<ghost@example.com>',
        'RCPT TO:<dave@example.org>',
        'RSET',
        'MAIL FROM:<s@client.example>',
        'RCPT TO:<alice@example.com>',
        'RCPT TO:<ghost2@example.com>',
        'DATA',
        'Subject: t\r\n\r\nbody\r\n.',
        'QUIT',
      ]);
      assert.match(got[2]!, /^550 5\.1\.1 /, got.join('\n'));
      assert.match(got[3]!, /^250 /, got.join('\n'));
      assert.match(got[4]!, /^451 4\.3\.0 /, got.join('\n'));
      assert.match(got[5]!, /^550 5\.1\.1 /, got.join('\n'));
      assert.match(got[6]!, /^250 /, got.join('\n'));
      assert.match(got[9]!, /^250 /, got.join('\n'));
      assert.match(got[10]!, /^550 5\.1\.1 /, got.join('\n'));
      assert.match(got[11]!, /^354 /, got.join('\n'));
      assert.match(got[12]!, /^250 /, got.join('\n'));
      const log = await mx!.maillog();
      assert.doesNotMatch(log, /warning: .*milter/, log);
    });
  });
}
