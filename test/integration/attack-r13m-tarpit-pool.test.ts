/**
 * The harvest tarpit must not hand a spammer the MX's smtpd processes. Each answer held back
 * keeps one smtpd waiting; a flagged client that opens as many sessions as the MX has
 * processes held them all, and every other sender waited: through a real Postfix with
 * default_process_limit 10 asking the policy service (real slapd; the milter alike), ten sessions of one flagged
 * spammer kept a legitimate sender on another address from its 250 for 108.6 s (default
 * tarpit delays; 15 ms with action reject). A flagged client now has a few places in the tarpit
 * at once (4); past them its recipients get 421 and Postfix ends those sessions at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { r13mTimedRcpts } from '../helpers/r13m-timed-smtp.js';

const SPAMMER = '127.0.0.1';
const guesses = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}${i}@example.com`);

for (const frontend of ['policy', 'milter'] as const) describe(`tarpitted sessions and the MX process pool (real Postfix, ${frontend}, slapd)`, () => {
  let ldap: Slapd;
  let app: App;
  let mx: PostfixInstance;

  before(async () => {
    requirePostfixTools();
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: null, socketmap: null, policy: frontend === 'policy' ? '127.0.0.1:0' : null, milter: frontend === 'milter' ? '127.0.0.1:0' : null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        // The default tarpit, with a shorter cap so a held session lasts about 40 s, not 100 s.
        policy: { harvest: { maxUnknown: 20, window: '10m', action: 'tarpit', delayStep: '1s', maxDelay: '2s' } },
        log: { level: 'error' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    const port = app.addresses[frontend]!.port;
    const hook: Record<string, string> =
      frontend === 'policy'
        ? { smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` }
        : { smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
    mx = await startPostfix({ mainCf: { relay_domains: 'example.com', default_process_limit: '10', ...hook } });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    await ldap?.close();
  });

  test('ten sessions of a flagged spammer leave room for another sender', async () => {
    // Flag the spammer: 24 unknowns over two sessions (Postfix's soft error limit slows one session).
    await r13mTimedRcpts(mx.port, SPAMMER, 's@spam.example', guesses('flag-a', 19));
    await r13mTimedRcpts(mx.port, SPAMMER, 's@spam.example', guesses('flag-b', 5)).catch(() => []);
    const sessions = Array.from({ length: 10 }, (_, s) =>
      r13mTimedRcpts(mx.port, SPAMMER, 's@spam.example', guesses(`g${s}-`, 30)).then(
        (r) => r.map((x) => x.reply.slice(0, 3)).join(','),
        (err: Error) => err.message.slice(0, 40),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the spam sessions are in

    const begun = performance.now();
    const legit = await r13mTimedRcpts(mx.port, '127.0.0.2', 'friend@partner.example', ['alice@example.com', 'bob@example.com']);
    const waited = performance.now() - begun;
    console.log(`legitimate session, connect to its last 250: ${Math.round(waited)} ms`);
    assert.deepEqual(legit.map((r) => r.reply.slice(0, 3)), ['250', '250']);
    // Before: 40 s and more (until the held sessions ended). Generous for a loaded machine.
    assert.ok(waited < 10_000, `waited ${Math.round(waited)} ms`);

    // The spammer's sessions beyond its places in the tarpit were ended with 421.
    const refused = Number((await app.metrics.registry.metrics()).match(new RegExp(`^rcptgate_harvest_blocked_total\\{frontend="${frontend}"\\} (\\d+)`, 'm'))?.[1] ?? 0);
    assert.ok(refused >= 6, `421 answers: ${refused}`);
    void Promise.all(sessions); // the held ones end with the MX
  });
});
