/**
 * A canary written as the operator sees it: `info@bücher.example` (the U-label of an IDN domain;
 * the directory stores the A-label, as lookups and the canary checks ask for it). The lookups and
 * canary checks normalize the configured canaries, but failback got them as written: its check
 * that the first server finds the first canary searched for the U-label, which a directory
 * holding the A-label never finds, so after a failover the lookups stayed on the replica for
 * ever (a replica that lags: users added since were unknown there). The directory now gets the
 * canaries normalized. Two real slapds, the directory as the service builds it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import { createDirectory } from '../../src/directory/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const NEWHIRE = `dn: uid=newhire,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: newhire
cn: New Hire
sn: Hire
mail: newhire@example.com`;

/** An address stored with the U-label (description: UTF-8, unlike slapd's IA5 mail), found by a configured filter. */
const UNICODE_HOLDER = `dn: uid=buecher,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: buecher
cn: Buecher
sn: Buecher
description: kontakt@bücher.example`;
const FILTER = '(|(mail=%s)(mailAlternateAddress=%s)(description=%s))';

describe('canaries spelled another way than the directory stores them', { concurrency: false }, () => {
  let primary: Slapd;
  let replica: Slapd;
  before(async () => {
    primary = await startSlapd({ ldifText: [NEWHIRE, UNICODE_HOLDER] });
    replica = await startSlapd({ ldifText: [UNICODE_HOLDER] });
  });
  after(async () => {
    await primary?.close();
    await replica?.close();
  });

  test('failback to the first server happens with a canary at a U-label domain, or in other case with a trailing dot', async () => {
    await failback(['info@bücher.example', 'Bob@Example.COM.'], null);
  });

  test('failback to the first server happens with a canary the directory stores with a U-label domain', async () => {
    await failback(['kontakt@bücher.example', 'kontakt@xn--bcher-kva.example'], FILTER);
  });

  async function failback(canaries: string[], filter: string | null): Promise<void> {
    for (const canary of canaries) {
      const config = validateConfig({
        domains: ['example.com', 'bücher.example'],
        directory: {
          kind: 'ldap',
          canaries: [canary],
          ldap: { urls: [primary.url, replica.url], baseDN: primary.baseDN, bindDN: primary.serviceDN, timeout: '2s', failbackAfter: '1s', filter },
        },
      });
      const dir = createDirectory(config, { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), env: { RCPTGATE_LDAP_BIND_PASSWORD: primary.servicePassword } });
      const onFirst = async (): Promise<boolean> => (await dir.lookup('newhire@example.com')).entry !== null;
      try {
        assert.equal(await onFirst(), true, 'the first server answers');
        await primary.stop();
        await dir.lookup('alice@example.com').catch(() => undefined);
        assert.equal(await onFirst(), false, `${canary}: failed over to the replica, which lacks the new user`);
        await primary.start();
        const started = Date.now();
        let back = false;
        while (!back && Date.now() - started < 20_000) {
          back = await onFirst().catch(() => false);
          if (!back) await sleep(200);
        }
        assert.ok(back, `${canary}: lookups never moved back to the first server`);
      } finally {
        await dir.close();
      }
    }
  }
});
