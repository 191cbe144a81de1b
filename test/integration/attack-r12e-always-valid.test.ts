/**
 * postmaster@ and abuse@ of every served domain through every front end while the directory is
 * down (RFC 5321 4.5.1: postmaster is a case-insensitive local name every domain must accept),
 * in every spelling a sender may use: upper case, quoted, with a sub-address, at an IDN domain
 * by its A-label; in an enforced and in a shadow domain. An uncached user still defers (451),
 * never 550. Real slapd (stopped), the real service, a real Postfix per front end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

type Frontend = 'policy' | 'milter' | 'socketmap';
const FRONTENDS: Frontend[] = ['policy', 'milter', 'socketmap'];
const RELAYED = 'example.com, example.org, xn--bcher-kva.example';

function hook(frontend: Frontend, port: number): Record<string, string> {
  const base = { smtpd_error_sleep_time: '0', smtpd_soft_error_limit: '100', smtpd_hard_error_limit: '100' };
  if (frontend === 'socketmap') {
    return { ...base, relay_domains: `socketmap:inet:127.0.0.1:${port}:domains`, relay_recipient_maps: `socketmap:inet:127.0.0.1:${port}:recipients` };
  }
  if (frontend === 'policy') return { ...base, relay_domains: RELAYED, smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` };
  return { ...base, relay_domains: RELAYED, smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
}

describe('postmaster and abuse in every spelling, every front end, directory down (real slapd, real Postfix)', () => {
  let ldap: Slapd;
  let app: App | undefined;
  const mx = new Map<Frontend, PostfixInstance>();

  before(async () => {
    requirePostfixTools();
    ldap = await startSlapd();
    app = await startApp({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
      domains: { 'example.com': {}, 'example.org': { mode: 'shadow' }, 'bücher.example': {} },
      policy: { harvest: { maxUnknown: 0 } },
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, timeout: '1s' } },
    });
    await ldap.stop();
    const started = await Promise.all(FRONTENDS.map((f) => startPostfix({ mainCf: hook(f, app!.addresses[f]!.port) })));
    FRONTENDS.forEach((f, i) => mx.set(f, started[i]!));
  });
  after(async () => {
    await Promise.all([...mx.values()].map((m) => m.close()));
    await app?.close();
    await ldap?.close();
  });

  test('every spelling is accepted (250); an uncached user is deferred (451)', async () => {
    const to = [
      'postmaster@example.com',
      'POSTMASTER@EXAMPLE.COM',
      '"postmaster"@example.com',
      '"Post\\master"@example.com',
      'Postmaster+bounces@example.com',
      'abuse@Example.Com',
      'postmaster@xn--bcher-kva.example',
      'Abuse@xn--BCHER-kva.example',
      'postmaster@example.org',
      'user3@example.com',
    ];
    const expected = ['250', '250', '250', '250', '250', '250', '250', '250', '250', '451'];
    for (const frontend of FRONTENDS) {
      const commands = ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@remote.example>', ...to.map((r) => `RCPT TO:<${r}>`), 'QUIT'];
      const replies = (await smtpSession(mx.get(frontend)!.port, commands)).slice(2, 2 + to.length);
      assert.deepEqual(replies.map((r) => r.slice(0, 3)), expected, `${frontend}: ${replies.join(' | ')}`);
    }
  });
});
