/**
 * Bytes arriving now count as hearing from the server, so a large answer read slowly is not cut
 * off as a silent connection. The other side: one connection of the pool whose path degrades to a
 * trickle (a byte every half second, for ever: a middlebox, a server stuck writing) is never
 * silent, while the server answers at once on the others. Lookups sent on it must still be asked
 * on another connection in time, not wait out their deadline behind the trickle (tempfail for
 * users who exist). Before, lookups sent on the trickling connection failed after 4,002 ms
 * (the timeout) though the other connection answered at once. Real slapd; the relay trickles one
 * connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startTrickleProxy, type TrickleProxy } from '../helpers/r13q-trickle-proxy.js';

const TIMEOUT_MS = 4_000;

describe('one connection of the pool trickling a byte every half second while the others answer (real slapd)', () => {
  let slapd: Slapd;
  let proxy: TrickleProxy;
  let directory: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startTrickleProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2, batchSize: 1 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('every lookup is answered within its deadline', async () => {
    for (let i = 0; i < 20 && proxy.open().length < 2; i++) await Promise.all(['bob@example.com', 'alice@example.com', 'staff@example.com'].map((a) => directory.lookup(a)));
    assert.equal(proxy.open().length, 2, 'both connections of the pool open');
    proxy.open()[0]!.trickle(500);
    const failures: string[] = [];
    let answered = 0;
    const one = async (address: string) => {
      const started = performance.now();
      try {
        const answer = await directory.lookup(address);
        assert.ok(answer.entry, `${address} found`);
        answered++;
      } catch (err) {
        failures.push(`${address} after ${Math.round(performance.now() - started)} ms: ${(err as Error).message}`);
      }
    };
    const all: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) {
      all.push(one('bob@example.com'), one('alice@example.com'), one('carol.mixed@example.com'));
      await sleep(200);
    }
    await Promise.all(all);
    console.log(`${answered} answered, ${failures.length} failed; connections opened ${proxy.connections.length}`);
    assert.deepEqual(failures, [], `${failures.length} of 90 lookups failed for users who exist`);
  });

  test('at a quiet time too: a lookup alone on the trickling connection is answered', async () => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2, batchSize: 1 } },
    }).directory.ldap;
    const quiet = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    try {
      const before = proxy.connections.length;
      for (let i = 0; i < 20 && proxy.connections.length - before < 2; i++) await Promise.all(['bob@example.com', 'alice@example.com', 'staff@example.com'].map((a) => quiet.lookup(a)));
      assert.equal(proxy.connections.slice(before).filter((c) => !c.closed).length, 2, 'both connections of the new pool open');
      // Whichever connection carries the next lookup of staff@ trickles from then on: it waits alone there.
      proxy.trickleWhenAsked = { marker: 'staff@example.com', intervalMs: 500 };
      const t0 = performance.now();
      const alone = await quiet.lookup('staff@example.com').then(
        (a) => `${a.entry?.canonical ?? 'unknown'}`,
        (err: Error) => `error after ${Math.round(performance.now() - t0)} ms: ${err.message}`,
      );
      console.log(`quiet: staff@ ${alone} (${Math.round(performance.now() - t0)} ms)`);
      assert.equal(alone, 'staff@example.com', 'the lookup alone on the trickling connection');
      assert.equal((await quiet.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
    } finally {
      await quiet.close();
    }
  });
});
