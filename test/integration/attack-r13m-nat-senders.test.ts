/**
 * Many legitimate senders behind one address (a university's or a carrier's NAT), through a real
 * Postfix asking the policy service, real slapd: 100 messages in sessions five at a time, to
 * valid users and, now and then, one of ten habitual typos or a departed colleague a monitoring
 * system pages with every message. Repeats count once per window, so the 11 distinct unknown
 * addresses stay under the limit (20): no tarpit, no 421, every typo 550, every valid user 250.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { r13mTimedRcpts } from '../helpers/r13m-timed-smtp.js';

const NAT = '127.0.0.44';
const VALID = ['alice@example.com', 'bob@example.com', 'alice.smith@example.com', 'first-last@example.com'];
const TYPOS = Array.from({ length: 10 }, (_, i) => `alcie${i}@example.com`);

/** The recipients of message `n`: two valid users, every third message a typo, every message the departed one. */
function recipients(n: number): string[] {
  const to = [VALID[n % VALID.length]!, VALID[(n + 1) % VALID.length]!, 'departed@example.com'];
  if (n % 3 === 0) to.push(TYPOS[n % TYPOS.length]!);
  return to;
}

describe('many senders behind one NAT address (real Postfix, policy, slapd)', () => {
  let ldap: Slapd;
  let app: App;
  let mx: PostfixInstance;

  before(async () => {
    requirePostfixTools();
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        log: { level: 'error' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${app.addresses.policy!.port}, permit`,
        smtpd_error_sleep_time: '0',
      },
    });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    await ldap?.close();
  });

  test('100 messages with repeated typos: never tarpitted or refused', async () => {
    const wrong: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 5 }, async (_, k) => {
          const n = batch * 5 + k;
          const to = recipients(n);
          const got = await r13mTimedRcpts(mx.port, NAT, `user${n}@campus.example`, to);
          got.forEach(({ reply }, i) => {
            const unknown = to[i] === 'departed@example.com' || TYPOS.includes(to[i]!);
            if (!reply.startsWith(unknown ? '550 5.1.1 ' : '250 ')) wrong.push(`message ${n}: ${to[i]} -> ${reply}`);
          });
        }),
      );
    }
    assert.deepEqual(wrong, []);
    const text = await app.metrics.registry.metrics();
    const count = (name: string) => Number(new RegExp(`^${name}\\{frontend="policy"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    assert.equal(count('rcptgate_harvest_delayed_total'), 0);
    assert.equal(count('rcptgate_harvest_blocked_total'), 0);
  });
});
