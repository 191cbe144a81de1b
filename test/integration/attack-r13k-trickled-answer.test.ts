/**
 * A large answer on a slow link: a role account with thousands of addresses, read from a directory
 * across a congested WAN, takes seconds to arrive while small answers on the other connections
 * come back at once. A connection counted as silent (cut off) at half the timeout when no whole
 * message had come back since the search left, though its bytes were arriving: it was dropped
 * while still receiving, the lookup asked again on another connection, slow the same way, and it
 * missed its deadline (tempfail for a user who exists). Real slapd; the proxy throttles what it
 * sends back to 20 kB/s per connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const TIMEOUT_MS = 6_000;
const ALIASES = 3_000;
const BIG = 'uid=role,ou=people,dc=example,dc=com';

describe('a large answer trickling in while small ones come back (real slapd)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    const aliases = Array.from({ length: ALIASES }, (_, i) => `mailAlternateAddress: role.alias${String(i).padStart(5, '0')}@example.com`).join('\n');
    slapd = await startSlapd({ ldifText: [`dn: ${BIG}\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: role\ncn: Role\nsn: Role\nmail: role@example.com\n${aliases}`] });
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('the large answer is read to its end on its connection, within the timeout', async () => {
    // Both connections open, then the link slows down.
    await Promise.all(['bob@example.com', 'alice@example.com', 'staff@example.com'].map((a) => directory.lookup(a)));
    assert.equal(proxy.open().length, 2);
    proxy.downBytesPerSecond = 20_000;
    const started = performance.now();
    const big = directory.lookup('role@example.com').then(
      (a) => a.entry?.canonical ?? null,
      (err: Error) => `error: ${err.message}`,
    );
    // Small answers on the other connection, answered while the large one trickles in.
    for (let i = 0; i < 8; i++) {
      await sleep(400);
      assert.equal((await directory.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
    }
    const answer = await big;
    const ms = Math.round(performance.now() - started);
    assert.equal(answer, 'role@example.com', `after ${ms} ms`);
    assert.equal(proxy.connections.length, 2, 'no connection dropped while its answer was arriving');
  });
});
