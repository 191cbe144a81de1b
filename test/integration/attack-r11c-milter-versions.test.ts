/**
 * The milter front end behind real Postfix instances speaking each milter_protocol it offers
 * (2, 3, 4, 6): negotiation (we ask only for skips the version offers), one transaction with
 * valid, unknown and undecidable recipients each answered on its own, a second message in the
 * same session (RSET: SMFIC_ABORT) taken whole, and no milter warning in Postfix's log. Engine:
 * LDIF for example.com/example.org, a stopped real slapd for example.net (split engine).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createMilterServer } from '../../src/milter/server.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

for (const version of ['2', '3', '4', '6']) {
  describe(`milter behind a real Postfix with milter_protocol = ${version}`, () => {
    let engine: SplitEngine | undefined;
    let server: TcpServer | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      requirePostfixTools();
      engine = await startSplitEngine();
      const { validator, metrics, logger } = engine;
      const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
      server = createMilterServer({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
      const { port } = await server.listen('127.0.0.1:0');
      mx = await startPostfix({
        mainCf: {
          relay_domains: 'example.com, example.org, example.net',
          smtpd_milters: `inet:127.0.0.1:${port}`,
          milter_protocol: version,
          milter_default_action: 'tempfail',
          smtpd_error_sleep_time: '0',
        },
      });
    });

    after(async () => {
      await mx?.close();
      await server?.close(1000);
      await engine?.close();
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
