/**
 * A "no such entry" counts only once a canary check sent after it finds every canary. But the
 * pool may hold connections to two servers at once, and the check rides on whichever is free.
 * Here, against real slapd servers: the first comes back from a restart with its bind account out
 * of the readers group (binds and searches succeed, and find nothing); meanwhile the pool failed
 * over to a replica, which closes idle connections (`idletimeout`, set through the included schema
 * file). Steady traffic keeps one replica connection; the ones it closes are replaced by
 * connections to the first URL, which is up again. Negatives from the blind first server were
 * vouched for by the canary the replica found: valid users answered unknown (550).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { TEST_SCHEMA, startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a canary check answered by another server than the negative it confirms', () => {
  let primary: Slapd;
  let replica: Slapd;
  let schemaDir: string | undefined;
  before(async () => {
    primary = await startSlapd({ revocableReader: true });
    // The replica closes connections idle for 2 s (olcIdleTimeout: a common setting).
    schemaDir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8c-'));
    const schema = path.join(schemaDir, 'idle.schema');
    await writeFile(schema, `${await readFile(TEST_SCHEMA, 'utf8')}\nidletimeout 2\n`);
    replica = await startSlapd({ schemaFile: schema });
  });
  after(async () => {
    await primary?.close();
    await replica?.close();
    if (schemaDir) await rm(schemaDir, { recursive: true, force: true });
  });

  test('a valid user answered "no such entry" by a server that lost its read rights is tempfail, never unknown', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: {
        kind: 'ldap',
        canaries: ['alice@example.com'],
        // One search per connection and no batching: which server answers what is decided by the pool alone.
        ldap: { urls: [primary.url, replica.url], baseDN: primary.baseDN, bindDN: primary.serviceDN, timeout: '2s', poolSize: 3, maxInFlightPerConnection: 1, batchSize: 1 },
      },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: primary.servicePassword, metrics, logger: silentLogger(), canaries: config.directory.canaries });
    const v = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
    const ask = (address: string) => v.lookup(address, { frontend: 'http' });
    try {
      assert.equal((await ask('bob@example.com')).verdict, 'valid', 'the first server answers');
      await primary.revokeReader();
      await primary.stop();
      // The pool's connection dies with the server; its retry connects to the replica.
      await ask('staff@example.com');
      assert.equal((await ask('carol.mixed@example.com')).verdict, 'valid', 'the replica answers');
      await primary.start();
      // Steady traffic keeps one replica connection busy; the replica closes the idle ones.
      for (let i = 0; i < 12; i++) {
        await directory.lookup('carol.mixed@example.com');
        await sleep(300);
      }
      // Three lookups at once: on the replica's connection and on new ones, to the first URL.
      const users = ['mallory@example.com', 'user1@example.com', 'user2@example.com', 'user3@example.com', 'user4@example.com', 'user5@example.com', 'first-last@example.com'];
      const verdicts: string[] = [];
      for (let round = 0; round < 4; round++) {
        const three = await Promise.all([0, 1, 2].map((k) => ask(users[(round * 3 + k) % users.length]!)));
        verdicts.push(...three.map((r) => `${r.address} ${r.verdict}`));
        v.flush();
      }
      const unknown = verdicts.filter((line) => line.endsWith(' unknown'));
      assert.deepEqual(unknown, [], `valid users answered unknown: ${verdicts.join(', ')}`);
      // Both servers answered: the replica (valid) and the blind first server (tempfail, never unknown).
      assert.ok(verdicts.some((line) => line.endsWith(' valid')), verdicts.join(', '));
      assert.ok(verdicts.some((line) => line.endsWith(' tempfail')), verdicts.join(', '));
    } finally {
      await directory.close();
    }
  });
});
