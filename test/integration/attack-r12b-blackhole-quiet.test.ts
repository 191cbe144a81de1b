/**
 * One pooled connection black-holed (its flow dropped by a middlebox: no FIN, no RST) while the
 * directory answers on the others, at a quiet time: lookups come one at a time, so nothing else is
 * on the wire beside a search sent down the dead connection, and no answer elsewhere shows it
 * dead. Such a lookup waited out the whole timeout and was TEMP (the MTA defers the mail), and
 * the next one on that connection again. Now, half the timeout in, the directory is asked on
 * another connection: answered there while the first stays silent, the dead connection is dropped
 * and the lookup retried, within its deadline. Real slapd behind a fault-injecting proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const TIMEOUT_MS = 3_000;
const LOOKUPS = 6;

describe('a black-holed pooled connection at a quiet time (real slapd, fault proxy)', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 300 });
  });
  after(async () => {
    await slapd?.close();
  });

  test('lookups one at a time, the pooled connection they go to black-holed: each answered right within the timeout', async () => {
    const proxy: FaultProxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2 } },
    }).directory.ldap;
    const directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    try {
      // Enough at once to open both pooled connections (more than 8 searches: batches of 16).
      await Promise.all(Array.from({ length: 200 }, (_, i) => directory.lookup(`user${i + 101}@example.com`)));
      assert.equal(proxy.open().length, 2, 'both pooled connections open');
      // A lone lookup takes the first connection opened (the freest, in pool order).
      proxy.open()[0]!.blackhole();
      const outcomes: string[] = [];
      for (let k = 1; k <= LOOKUPS; k++) {
        const started = performance.now();
        const outcome = await directory.lookup(`user${k}@example.com`).then(
          (a) => a.entry?.canonical ?? 'no entry',
          (err: Error) => `failed: ${err.message}`,
        );
        outcomes.push(`${outcome} in ${Math.round(performance.now() - started)} ms`);
      }
      const wrong = outcomes.filter((o, i) => !o.startsWith(`user${i + 1}@example.com in `));
      assert.deepEqual(wrong, [], outcomes.join('; '));
      const slowest = Math.max(...outcomes.map((o) => Number(/in (\d+) ms$/.exec(o)![1])));
      assert.ok(slowest < TIMEOUT_MS, `slowest ${slowest} ms; timeout ${TIMEOUT_MS} ms`);
    } finally {
      await directory.close();
      await proxy.close();
    }
  });
});
