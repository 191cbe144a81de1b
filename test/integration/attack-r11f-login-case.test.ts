/**
 * Harvest protection counts a logged-in sender by its login, through a real Postfix (XCLIENT
 * LOGIN: Postfix reports it as sasl_username to the policy server and as {auth_authen} to the
 * milter). A SASL backend that checks passwords against LDAP or AD accepts any case of a login,
 * so a harvester with one stolen password varies the case to get a fresh budget each time: the
 * spellings of one login must share one count. Engine: LDIF example.com/example.org.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createMilterServer } from '../../src/milter/server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

/** RCPT replies of one session from `address` logged in as `login`; Postfix hangs up after a 421. */
async function rcpts(mx: PostfixInstance, address: string, login: string, rcptTo: string[]): Promise<string[]> {
  const commands = ['EHLO client.rcptgate.test', `XCLIENT ADDR=${address} LOGIN=${login}`, 'EHLO client.rcptgate.test', 'MAIL FROM:<sender@example.com>', ...rcptTo.map((r) => `RCPT TO:<${r}>`)];
  try {
    return (await smtpSession(mx.port, commands)).slice(4);
  } catch (err) {
    const log = (await mx.maillog()).split('\n').filter((l) => l.includes('RCPT from'));
    assert.fail(`session of ${address} (login ${login}) ended early: ${(err as Error).message}\n${log.slice(-5).join('\n')}`);
  }
}

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: one login in any case is one harvester`, () => {
    let engine: SplitEngine | undefined;
    let server: TcpServer | undefined;
    let mx: PostfixInstance | undefined;

    before(async () => {
      requirePostfixTools();
      engine = await startSplitEngine();
      const { validator, metrics, logger } = engine;
      const harvest = new HarvestGuard({ maxUnknown: 2, windowMs: 600_000, action: 'reject' });
      const create = frontend === 'policy' ? createPolicyServer : createMilterServer;
      server = create({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
      const { port } = await server.listen('127.0.0.1:0');
      const hook: Record<string, string> =
        frontend === 'policy'
          ? { smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` }
          : { smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
      mx = await startPostfix({
        mainCf: {
          ...hook,
          relay_domains: 'example.com, example.org, example.net',
          smtpd_sasl_auth_enable: 'yes',
          smtpd_authorized_xclient_hosts: '127.0.0.0/8',
          smtpd_error_sleep_time: '0',
          smtpd_soft_error_limit: '100',
          smtpd_hard_error_limit: '100',
        },
      });
    });

    after(async () => {
      await mx?.close();
      await server?.close(1000);
      await engine?.close();
    });

    test('a login flagged in lower case is flagged in any other case, from any address', async () => {
      const first = await rcpts(mx!, '192.0.2.61', 'trudy', ['typo1@example.com', 'typo2@example.com', 'typo3@example.com']);
      assert.deepEqual(first.map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], first.join('\n'));
      const refused: string[] = [];
      for (const [i, spelling] of ['Trudy', 'TRUDY', 'tRuDy'].entries()) {
        const r = await rcpts(mx!, `198.51.100.${10 + i}`, spelling, [`probe${i}@example.com`]);
        if (/^421 4\.7\.0 /.test(r[0]!)) refused.push(spelling);
      }
      assert.deepEqual(refused, ['Trudy', 'TRUDY', 'tRuDy'], 'spellings of the flagged login that were answered instead of refused');
      // Another user is not affected by the harvester's count.
      const other = await rcpts(mx!, '192.0.2.61', 'Carol', ['alice@example.com']);
      assert.match(other[0]!, /^250 /, other.join('\n'));
    });
  });
}
