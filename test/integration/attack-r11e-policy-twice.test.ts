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
import { HarvestGuard } from '../../src/gate/harvest.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

describe('policy listed in both smtpd_relay_restrictions and smtpd_recipient_restrictions (real Postfix)', () => {
  let engine: SplitEngine | undefined;
  let server: TcpServer | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    requirePostfixTools();
    engine = await startSplitEngine();
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: 2, windowMs: 600_000, action: 'reject' });
    server = createPolicyServer({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
    const { port } = await server.listen('127.0.0.1:0');
    const policy = `check_policy_service inet:127.0.0.1:${port}`;
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org, example.net',
        smtpd_relay_restrictions: `${policy}, permit_mynetworks, reject_unauth_destination`,
        smtpd_recipient_restrictions: `${policy}, permit`,
        smtpd_error_sleep_time: '0',
      },
    });
  });

  after(async () => {
    await mx?.close();
    await server?.close(1000);
    await engine?.close();
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
