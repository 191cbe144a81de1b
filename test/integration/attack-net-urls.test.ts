/**
 * Several `urls` whose first ones are of no use, in front of the real slapd: a host name that does
 * not resolve (the reserved .invalid domain), a server that accepts TCP but never answers the bind
 * (a proxy that forwards nothing), two of those in a row. New connections try the URLs in order,
 * each with an equal share of the time left, so the live one still answers within the timeout,
 * and a burst of lookups is answered in full. (A refusing first URL is tested in faults.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const TIMEOUT_MS = 3_000;

describe('failover past URLs that do not resolve or never answer the bind', () => {
  let slapd: Slapd;
  let silent: FaultProxy;
  let silent2: FaultProxy;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 200 });
    [silent, silent2] = await Promise.all([startFaultProxy(slapd.port), startFaultProxy(slapd.port)]);
    silent.mode = silent2.mode = 'blackhole';
  });
  after(async () => {
    await Promise.all([silent?.close(), silent2?.close()]);
    await slapd?.close();
  });

  const cases: [string, () => string[], number][] = [
    // A resolver that is slow to say "no such name" only costs that URL's share of the timeout.
    ['a host name that does not resolve', () => ['ldap://rcptgate-test.invalid:389', slapd.url], TIMEOUT_MS],
    ['a server that never answers the bind', () => [silent.url, slapd.url], TIMEOUT_MS],
    ['two such servers', () => [silent.url, silent2.url, slapd.url], TIMEOUT_MS],
  ];
  for (const [name, urls, boundMs] of cases) {
    test(`${name}: the next URL answers a burst of lookups, all within ${boundMs} ms`, async () => {
      const config = configSchema.parse({
        directory: { kind: 'ldap', ldap: { urls: urls(), baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 4 } },
      }).directory.ldap;
      const directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
      try {
        const started = performance.now();
        const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => directory.lookup(`user${i + 1}@example.com`)));
        const ms = performance.now() - started;
        assert.deepEqual(
          answers.map((a) => a.entry?.canonical),
          Array.from({ length: 60 }, (_, i) => `user${i + 1}@example.com`),
        );
        assert.ok(ms < boundMs, `answered after ${Math.round(ms)} ms; bound ${boundMs} ms`);
        assert.equal((await directory.lookup('nobody@example.com')).entry, null);
      } finally {
        await directory.close();
      }
    });
  }
});
