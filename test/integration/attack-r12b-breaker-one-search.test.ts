/**
 * One LDAP search hangs on the server (a slow disk, a lock) while the directory answers every
 * other search, on the same connection too. The lookups it carried fail at the timeout: with
 * batching one search carries up to 16 of them, and each counted as a failure of the directory,
 * so one stuck search made the 5 "consecutive failures" that open the breaker. Every cold lookup
 * was then TEMP at once for the cooldown and the trial, though the directory answered them. A
 * failure shared by the lookups of one search now counts once. Real slapd behind a proxy that
 * drops the answer to the searches for the stalled users; the directory as `serve` builds it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { createDirectory } from '../../src/directory/index.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startStallProxy, type StallProxy } from '../helpers/r12b-stall-proxy.js';

const TIMEOUT_MS = 3_000;
/** user1..user16: one batch's worth. */
const STALLED = new Set(Array.from({ length: 16 }, (_, i) => `uid=user${i + 1},`));

describe('one stuck search among answered ones (real slapd, the breaker as serve builds it)', () => {
  let slapd: Slapd;
  let proxy: StallProxy;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 300 });
    proxy = await startStallProxy(slapd.port, (msg) => {
      const text = msg.toString('latin1');
      return [...STALLED].some((dn) => text.includes(dn));
    });
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test('the lookups of the stuck search fail, every other lookup is answered: the breaker stays closed', async () => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 1 } },
    });
    const directory = createDirectory(config, { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword } });
    try {
      assert.equal((await directory.lookup('user200@example.com')).entry?.canonical, 'user200@example.com', 'warm: the pooled connection is open');
      const stuck = Promise.allSettled(Array.from({ length: 16 }, (_, i) => directory.lookup(`user${i + 1}@example.com`)));
      await sleep(50); // the stuck lookups have left (alone, then batched), not joined by the others
      // Lookups on after the stuck ones, every 100 ms, until past their deadline (and before the
      // stuck search counts as hung, a full timeout later, which drops its connection).
      const others: string[] = [];
      for (let k = 101; k <= 150; k++) {
        const outcome = await directory.lookup(`user${k}@example.com`).then(
          (a) => a.entry?.canonical ?? 'no entry',
          (err: Error) => `failed: ${err.message}`,
        );
        others.push(outcome);
        await sleep(100);
      }
      const stuckOutcomes = await stuck;
      assert.ok(proxy.stalled >= 1, 'the stalled users were searched');
      assert.ok(stuckOutcomes.every((o) => o.status === 'rejected'), 'the lookups of the stuck search failed (tempfail)');
      const wrong = others.map((o, i) => (o === `user${i + 101}@example.com` ? null : `user${i + 101}: ${o}`)).filter((o) => o !== null);
      assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} of ${others.length} other lookups not answered`);
    } finally {
      await directory.close();
    }
  });
});
