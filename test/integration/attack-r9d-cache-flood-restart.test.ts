/**
 * A dictionary attack that starts while the answer cache still has room (after a restart, a
 * reload that emptied it, a flush) fills that room with "no such entry" answers. Unknown answers
 * take the slots of valid ones only up to a quarter of the cache, but that was checked only when
 * an unknown answer came in: valid answers arriving afterwards (the day's mail, while the flood
 * goes on) pushed out the older valid ones and left every unknown answer in place, so the valid
 * answers stale-if-error serves in an outage shrank to what the cache held when the flood began.
 * Real slapd, stopped after the flood; a small cache stands for a large one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { createDirectory } from '../../src/directory/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const MAX_ENTRIES = 40;
const EARLY = Array.from({ length: 10 }, (_, i) => `user${i + 1}@example.com`);
const LATER = Array.from({ length: 10 }, (_, i) => `user${i + 11}@example.com`);

describe('a flood of unknown addresses into a cache with room left, valid mail going on', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 20 });
  });
  after(async () => {
    await slapd?.close();
  });

  test('holds unknown answers to a quarter once valid answers need the room', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '1s' } },
      cache: { maxEntries: MAX_ENTRIES },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = createDirectory(config, { metrics, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword } });
    const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
    const verdict = async (a: string) => (await engine.lookup(a, { frontend: 'socketmap' })).verdict;
    try {
      for (const a of EARLY) assert.equal(await verdict(a), 'valid', a);
      // The flood fills the 30 free slots, then goes on, as the day's mail does.
      for (let wave = 0; wave < 10; wave++) {
        const guesses = Array.from({ length: MAX_ENTRIES / 2 }, (_, i) => `guess${wave}-${i}@example.com`);
        for (const v of await Promise.all(guesses.map(verdict))) assert.equal(v, 'unknown');
        if (wave >= 5) assert.equal(await verdict(LATER[(wave - 5) * 2]!), 'valid');
        if (wave >= 5) assert.equal(await verdict(LATER[(wave - 5) * 2 + 1]!), 'valid');
      }
      assert.equal(engine.answerCache?.size, MAX_ENTRIES);
      await slapd.stop();
      const during = await Promise.all([...EARLY, ...LATER].map(async (a) => [a, await verdict(a)] as const));
      assert.deepEqual(during.filter(([, v]) => v !== 'valid'), [], 'valid recipients deferred while the directory is down');
      assert.equal(await verdict('never-asked@example.com'), 'tempfail');
    } finally {
      await directory.close();
      if (slapd.pid === undefined) await slapd.start();
    }
  });
});
