/**
 * Our own queue is not the directory failing. A healthy directory far away (a delaying proxy in
 * front of a real slapd), more lookups than its search slots can carry: lookups wait in our
 * queue, and one dispatched with little of its time left runs out on the wire. That is our
 * overload (the directory answered every search within one round trip), and must not count as
 * a directory timeout: counted, those opened the circuit breaker and marked the directory down,
 * turning every uncached lookup into a tempfail for the cooldown.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';

describe('a saturated queue in front of a healthy, distant directory', () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startDelayProxy(slapd.port, 100);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test('lookups that spent their time in our queue fail as OVERLOADED, never as a directory TIMEOUT', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, poolSize: 1, maxInFlightPerConnection: 1, batchSize: 1, timeout: '1s' } },
    }).directory.ldap;
    const dir = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
    try {
      await dir.lookup('bob@example.com');
      // One search at a time, each a 200 ms round trip: about 5 a second. Offer 20 a second for 2 s.
      const lookups: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        lookups.push(dir.lookup(`user${(i % 5) + 1}@example.com`).catch((err: unknown) => err));
        await sleep(50);
      }
      const outcomes = await Promise.all(lookups);
      const codes = outcomes.map((o) => (o instanceof DirectoryError ? o.code : 'answered'));
      assert.ok(codes.includes('answered'), 'some lookups were answered');
      assert.ok(codes.includes(ErrorCodes.DIRECTORY_OVERLOADED), `the queue overflowed: ${codes.join(' ')}`);
      assert.deepEqual(codes.filter((c) => c !== 'answered' && c !== ErrorCodes.DIRECTORY_OVERLOADED), [], 'only our own refusals, no directory failure');
      const counted = Object.fromEntries((await metrics.directoryRequests.get()).values.map((v) => [v.labels.outcome, v.value]));
      assert.equal(counted.timeout, undefined, `directory timeouts counted: ${JSON.stringify(counted)}`);
    } finally {
      await dir.close();
    }
  });
});
