/**
 * The circuit breaker around the directory timed its cooldown on the wall clock. Opened by an
 * outage, then the clock stepped back an hour (an NTP step after a boot with a wrong RTC, a VM
 * restored from a snapshot): no trial request was let through until the wall clock caught up,
 * so lookups kept failing at once long after the directory was back (in serve only the
 * readiness probe's next round closed it). We cannot step the shared machine's clock in a test,
 * so Date.now is mocked to the stepped wall clock (the only fake); slapd and its sockets are real.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import type { BreakerDirectory } from '../../src/directory/breaker.js';
import { createDirectory } from '../../src/directory/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('the directory circuit breaker when the wall clock steps back', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd();
  });
  afterEach(() => mock.restoreAll());
  after(async () => {
    await slapd?.close();
  });

  test('lets a trial through after its cooldown of real time, and closes once the directory answers', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '500ms' } },
    });
    // The wall clock as the process sees it, stepped back later by `step` ms.
    const realNow = Date.now.bind(Date);
    let step = 0;
    mock.method(Date, 'now', () => realNow() - step);
    const directory = createDirectory(config, { metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword } }) as BreakerDirectory;
    try {
      assert.equal((await directory.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
      await slapd.stop();
      for (let i = 0; i < 6; i++) await directory.lookup(`gone${i}@example.com`).catch(() => undefined);
      assert.equal(directory.state, 'open');

      step = 3_600_000;
      await slapd.start();
      const backAt = performance.now();
      let answered = false;
      while (!answered && performance.now() - backAt < 8_000) {
        answered = await directory.lookup('alice@example.com').then(
          (a) => a.entry !== null,
          () => false,
        );
        if (!answered) await sleep(200);
      }
      assert.ok(answered, `the breaker stayed ${directory.state} 8 s after the directory came back`);
      assert.equal(directory.state, 'closed');
    } finally {
      await directory.close();
    }
  });
});
