/**
 * A dictionary attack on a backup MX, then the directory goes away: the one moment the answer
 * cache is for. The cache was one least-recently-used list, so the attack's unknown addresses
 * (each cached as "no such entry" for negativeTtl) pushed out every valid answer, and with the
 * directory down the real recipients got tempfail instead of the valid answer stale-if-error
 * keeps for them. The same when the flood starts while the cache still has room (after a restart,
 * a reload that emptied it, a flush): the quarter unknown answers may hold was checked only when
 * an unknown answer came in, so valid answers arriving during the flood pushed out the older valid
 * ones and left every unknown in place. Real slapd, stopped after the flood; a small cache stands
 * for a large one under a larger flood.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { createDirectory } from '../../src/directory/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const RECIPIENTS = ['alice@example.com', 'bob@example.com', 'carol.mixed@example.com', 'staff@example.com', 'first-last@example.com', 'user1@example.com', 'user2@example.com', 'user3@example.com', 'user4@example.com', 'user5@example.com'];
const MAX_ENTRIES = 40;
const EARLY = Array.from({ length: 10 }, (_, i) => `user${i + 1}@example.com`);
const LATER = Array.from({ length: 10 }, (_, i) => `user${i + 11}@example.com`);

/** An engine with a cache of MAX_ENTRIES on `slapd`, and its verdict for an address. */
function engineOn(slapd: Slapd) {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '1s' } },
    cache: { maxEntries: MAX_ENTRIES },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = createDirectory(config, { metrics, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword } });
  const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
  const verdict = async (a: string) => (await engine.lookup(a, { frontend: 'socketmap' })).verdict;
  return { directory, engine, verdict };
}

describe('valid answers in the cache through a flood of unknown addresses', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 20 });
  });
  after(async () => {
    await slapd?.close();
  });

  test('survive it, and are served while the directory is down afterwards', async () => {
    const { directory, verdict } = engineOn(slapd);
    try {
      for (const a of RECIPIENTS) assert.equal(await verdict(a), 'valid', a);
      // Five times the cache's size in unknown addresses, in waves as an attacker sends them.
      for (let wave = 0; wave < 10; wave++) {
        const guesses = Array.from({ length: MAX_ENTRIES / 2 }, (_, i) => `guess${wave}-${i}@example.com`);
        for (const v of await Promise.all(guesses.map(verdict))) assert.equal(v, 'unknown');
      }
      await slapd.stop();
      const during = await Promise.all(RECIPIENTS.map(async (a) => [a, await verdict(a)] as const));
      assert.deepEqual(during.filter(([, v]) => v !== 'valid'), [], 'valid recipients deferred while the directory is down');
      // Unknown addresses still defer or are refused as before: the newest negatives are kept.
      assert.equal(await verdict('never-asked@example.com'), 'tempfail');
    } finally {
      await directory.close();
      if (slapd.pid === undefined) await slapd.start();
    }
  });

  test('that began while the cache had room: unknown answers are held to a quarter once valid answers need the room', async () => {
    const { directory, engine, verdict } = engineOn(slapd);
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
