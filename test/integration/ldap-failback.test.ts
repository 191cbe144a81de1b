/**
 * Failback against real slapd servers. The first URL (the site's own server) goes down, the pool
 * fails over to the second (a replica elsewhere), then the first comes back. Before failback the
 * pool stayed on the replica until a connection died: for ever, in a long-running service. The
 * replica here lags: it lacks an entry just added on the first server, so which server answers
 * shows in the answers.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

const NEWHIRE = `dn: uid=newhire,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: newhire
cn: New Hire
sn: Hire
mail: newhire@example.com`;

function directory(urls: string[], slapd: Slapd, ldap: LdapInput): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
}

/** Whether `address` has an entry, per the server that answered. */
async function found(dir: LdapDirectory, address: string): Promise<boolean> {
  return (await dir.lookup(address)).entry !== null;
}

describe('LDAP failback to the first URL', () => {
  let primary: Slapd;
  let replica: Slapd;
  before(async () => {
    primary = await startSlapd({ ldifText: [NEWHIRE] });
    replica = await startSlapd();
  });
  after(async () => {
    await primary?.close();
    await replica?.close();
  });

  test('once the first server answers again, lookups move back to it, and none fails on the way', async () => {
    const dir = directory([primary.url, replica.url], primary, { failbackAfter: '1s', timeout: '2s' });
    try {
      assert.equal(await found(dir, 'newhire@example.com'), true, 'the first server answers');
      await primary.stop();
      // The dead connection fails its search; the retry opens one on the replica.
      await dir.lookup('alice@example.com').catch(() => undefined);
      assert.equal(await found(dir, 'alice@example.com'), true);
      assert.equal(await found(dir, 'newhire@example.com'), false, 'the replica answers, without the new entry');
      await primary.start();
      const started = Date.now();
      let back = false;
      while (!back && Date.now() - started < 15_000) {
        // Every lookup is answered while the pool moves: the attempt runs beside the served connection.
        assert.equal(await found(dir, 'alice@example.com'), true);
        back = await found(dir, 'newhire@example.com');
        if (!back) await sleep(100);
      }
      assert.ok(back, 'lookups never returned to the first server');
      // About failbackAfter after the failover connection opened (it opened before the restart).
      assert.ok(Date.now() - started < 5_000, `failback took ${Date.now() - started} ms`);
      for (let i = 0; i < 20; i++) assert.equal(await found(dir, 'newhire@example.com'), true, 'every connection is back on the first server');
    } finally {
      await dir.close();
    }
  });

  test('with failbackAfter 0s the pool stays where it failed over to', async () => {
    if (!primary.pid) await primary.start();
    const dir = directory([primary.url, replica.url], primary, { failbackAfter: '0s', timeout: '2s' });
    try {
      assert.equal(await found(dir, 'newhire@example.com'), true);
      await primary.stop();
      await dir.lookup('alice@example.com').catch(() => undefined);
      assert.equal(await found(dir, 'newhire@example.com'), false);
      await primary.start();
      await sleep(1_500);
      for (let i = 0; i < 10; i++) assert.equal(await found(dir, 'newhire@example.com'), false, 'still on the replica');
    } finally {
      await dir.close();
    }
  });

  test('a first URL still down (refusing, or silent) is retried in the background; lookups are answered at once meanwhile', async () => {
    // A black hole: accepts and never answers, so each failback attempt waits its whole timeout.
    const held: net.Socket[] = [];
    const hole = net.createServer((s) => held.push(s));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const silent = `ldap://127.0.0.1:${(hole.address() as net.AddressInfo).port}`;
    try {
      for (const first of [await closedPortUrl(), silent]) {
        const dir = directory([first, replica.url], replica, { failbackAfter: '200ms', timeout: '1s' });
        try {
          await dir.lookup('alice@example.com').catch(() => undefined); // the first connect may use up the time of the silent URL
          const end = Date.now() + 3_000;
          let slowest = 0;
          let n = 0;
          while (Date.now() < end) {
            const t = performance.now();
            assert.equal(await found(dir, 'alice@example.com'), true, first);
            slowest = Math.max(slowest, performance.now() - t);
            n++;
            await sleep(20);
          }
          assert.ok(slowest < 500, `${first}: slowest of ${n} lookups ${slowest.toFixed(0)} ms`);
        } finally {
          await dir.close();
        }
      }
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => hole.close(resolve));
    }
  });
});
