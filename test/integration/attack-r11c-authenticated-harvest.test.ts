/**
 * Harvest protection and authenticated senders, through a real Postfix (policy delegation, and
 * smtpd_milters), clients named with XCLIENT (ADDR, LOGIN: Postfix then reports the login as
 * sasl_username to the policy server and as {auth_authen} to the milter, as after SMTP AUTH).
 * A logged-in user is counted by its login, not its address: the address it sends from may be
 * shared (an office NAT, a mobile carrier's CGNAT) with a client that was flagged, and its typos
 * must not flag the others behind that address; a stolen login used to harvest is still flagged,
 * from any address. Engine: LDIF example.com/example.org (split engine).
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

/**
 * RCPT replies of one session of `address`, logged in as `login` when given. Postfix hangs up
 * after a 421, so the session has no QUIT, and a session cut short fails with smtpd's log.
 */
async function rcpts(mx: PostfixInstance, address: string, login: string | null, rcptTo: string[]): Promise<string[]> {
  const xclient = `XCLIENT ADDR=${address}${login === null ? '' : ` LOGIN=${login}`}`;
  const commands = ['EHLO client.rcptgate.test', xclient, 'EHLO client.rcptgate.test', 'MAIL FROM:<sender@example.com>', ...rcptTo.map((r) => `RCPT TO:<${r}>`)];
  try {
    return (await smtpSession(mx.port, commands)).slice(4);
  } catch (err) {
    const log = (await mx.maillog()).split('\n').filter((l) => l.includes('RCPT from'));
    assert.fail(`session of ${address} (login ${login}) ended early: ${(err as Error).message}\n${log.slice(-5).join('\n')}`);
  }
}

for (const frontend of ['policy', 'milter'] as const) {
  describe(`${frontend} behind a real Postfix: authenticated senders and harvest protection`, () => {
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

    test('a logged-in user sending from the address of a flagged harvester is answered, not refused', async () => {
      const shared = '192.0.2.50';
      assert.deepEqual((await rcpts(mx!, shared, null, ['ghost1@example.com', 'ghost2@example.com'])).map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1']);
      const third = await rcpts(mx!, shared, null, ['ghost3@example.com']);
      assert.match(third[0]!, /^421 4\.7\.0 /, third.join('\n'));
      // The anonymous client stays refused; the user logged in from the same address is not.
      const user = await rcpts(mx!, shared, 'carol', ['alice@example.com', 'typo@example.com', 'dave@example.org']);
      assert.match(user[0]!, /^250 /, user.join('\n'));
      assert.match(user[1]!, /^550 5\.1\.1 /, user.join('\n'));
      assert.match(user[2]!, /^250 /, user.join('\n'));
      const again = await rcpts(mx!, shared, null, ['alice@example.com']);
      assert.match(again[0]!, /^421 4\.7\.0 /, again.join('\n'));
    });

    test("a logged-in user's unknown recipients are counted against its login, from any address, not against the address", async () => {
      const office = '192.0.2.51';
      const user = await rcpts(mx!, office, 'mallory', ['typo1@example.com', 'typo2@example.com', 'typo3@example.com']);
      assert.deepEqual(user.map((r) => r.slice(0, 9)), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], user.join('\n'));
      // The login is flagged wherever it sends from (stolen credentials rotating addresses)…
      const elsewhere = await rcpts(mx!, '198.51.100.7', 'mallory', ['alice@example.com']);
      assert.match(elsewhere[0]!, /^421 4\.7\.0 /, elsewhere.join('\n'));
      // …while an anonymous client and another user at the office start from nothing.
      const other = await rcpts(mx!, office, null, ['ghost1@example.com', 'alice@example.com']);
      assert.deepEqual(other.map((r) => r.slice(0, 9)), ['550 5.1.1', '250 2.1.5'], other.join('\n'));
      const colleague = await rcpts(mx!, office, 'carol', ['alice@example.com']);
      assert.match(colleague[0]!, /^250 /, colleague.join('\n'));
    });
  });
}
