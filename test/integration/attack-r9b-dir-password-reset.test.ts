/**
 * A directory administrator resets the service account's password with "must change at next
 * logon" (OpenLDAP ppolicy: pwdReset with pwdMustChange), then notices and clears it. Under
 * ppolicy a connection bound while pwdReset is set stays restricted to changing the password for
 * as long as it lives, whatever happens to the account afterwards: its searches get
 * insufficientAccessRights (50). Those are tempfail, never unknown; but the pooled connections
 * were kept, so the lookups, the breaker's trials and the readiness probe kept asking on them,
 * and rcptgate deferred every uncached recipient until it was restarted. Real slapd with the
 * ppolicy overlay.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import { createDirectory } from '../../src/directory/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const POLICY = 'cn=default,ou=groups,dc=example,dc=com';

describe('the bind account reset to "must change password" and back (ppolicy)', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({
      modules: ['ppolicy'],
      databaseLines: ['overlay ppolicy', `ppolicy_default "${POLICY}"`],
      ldifText: [`dn: ${POLICY}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdMustChange: TRUE`],
    });
  });
  after(async () => {
    await slapd?.close();
  });

  const pwdReset = (change: string) => slapd.modify(`dn: ${slapd.serviceDN}\nchangetype: modify\n${change}\n`);

  test('lookups defer while the account is restricted, and are answered again soon after it is fixed', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s', poolSize: 2 } },
      cache: { maxEntries: 0 },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    // As the service builds it: the LDAP directory behind the circuit breaker.
    const directory = createDirectory(config, { metrics, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword } });
    const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
    const verdict = async (a: string) => (await engine.lookup(a, { frontend: 'http' })).verdict;
    try {
      assert.equal(await verdict('bob@example.com'), 'valid');

      // Reset with "must change"; the connections are reopened (a slapd restart) while it holds.
      await pwdReset('replace: pwdReset\npwdReset: TRUE');
      await slapd.stop();
      await slapd.start();
      for (const a of ['bob@example.com', 'nobody@example.com', 'alice@example.com', 'nobody2@example.com']) assert.equal(await verdict(a), 'tempfail', a);
      await assert.rejects(directory.probe(), /insufficientAccessRights|Insufficient/i);

      // The administrator clears it: new binds are not restricted.
      await pwdReset('delete: pwdReset');
      const fixedAt = Date.now();
      let answered: string[] = [];
      while (Date.now() - fixedAt < 10_000) {
        await directory.probe().catch(() => undefined);
        answered = await Promise.all(['bob@example.com', 'nobody@example.com'].map(verdict));
        if (answered[0] === 'valid') break;
        await sleep(250);
      }
      assert.deepEqual(answered, ['valid', 'unknown'], 'still deferring 10 s after the account was fixed');
    } finally {
      await directory.close();
    }
  });
});
