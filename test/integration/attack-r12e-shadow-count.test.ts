/**
 * Shadow mode's count of would-be refusals through a policy server that Postfix asks twice per
 * recipient: listed in smtpd_relay_restrictions (evaluated first since Postfix 2.10) and in
 * smtpd_recipient_restrictions, as the README recipe and an older config both put it. Enforced,
 * an unknown recipient is refused at the first ask; in shadow mode it is let through (DUNNO), so
 * Postfix asks again with the same request. The counter the operator reads before switching to
 * enforce must count each recipient once. The real service (bundled example directory, its
 * example.com in shadow mode) behind a real Postfix.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';

describe('shadow counts through a policy server listed in both restriction lists (real Postfix)', () => {
  let app: App | undefined;
  let mx: PostfixInstance | undefined;
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    requirePostfixTools();
    const raw = {
      listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
      domains: { 'example.com': { mode: 'shadow' }, 'example.org': {} },
      policy: { harvest: { maxUnknown: 0 } },
    };
    const logger = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } as never);
    app = await createApp({ loaded: { config: validateConfig(raw), file: null }, logger });
    await app.start();
    const policy = `check_policy_service inet:127.0.0.1:${app.addresses.policy!.port}`;
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org',
        smtpd_error_sleep_time: '0',
        smtpd_relay_restrictions: `${policy}, permit_mynetworks, reject_unauth_destination`,
        smtpd_recipient_restrictions: `${policy}, permit`,
      },
    });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
  });

  const shadowCount = async () => (await app!.metrics.shadowRejections.get()).values.find((v) => v.labels.domain === 'example.com')?.value ?? 0;

  test('each would-be refusal is counted and logged once; the enforced domain still refuses', async () => {
    const to = ['ghost1@example.com', 'alice@example.com', 'ghost2@example.com', 'ghost1@example.com', 'nobody@example.org', 'dave@example.org'];
    const commands = ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@remote.example>', ...to.map((r) => `RCPT TO:<${r}>`), 'QUIT'];
    const replies = (await smtpSession(mx!.port, commands)).slice(2, 2 + to.length);
    assert.deepEqual(replies.map((r) => r.slice(0, 3)), ['250', '250', '250', '250', '550', '250'], replies.join(' | '));
    // ghost1 twice by the client (two RCPTs: two would-be refusals), ghost2 once.
    assert.equal(await shadowCount(), 3, 'one count per RCPT refused in enforce mode');
    const lines = logs.filter((l) => l.msg === 'shadow mode: would have refused');
    assert.deepEqual(lines.map((l) => l.address), ['ghost1@example.com', 'ghost2@example.com', 'ghost1@example.com']);
  });
});
