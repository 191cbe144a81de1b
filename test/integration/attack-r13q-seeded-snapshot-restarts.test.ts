/**
 * Each snapshot now hashes its indexes with its own random seed, recorded in the file (format 4).
 * Every step that carries a store on must keep its seed with its indexes: a full sync written to
 * the file, a restart that loads it, incremental syncs that add and change entries in the
 * loaded store (its indexes growing past their size), the file written again and loaded by the
 * next restart. A seed lost or mixed up anywhere answers existing users unknown (550). Real slapd,
 * the real sync; each restart a new sync reading the file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 3_000;
const ADDED = 3_000;
const added = (uid: string) => `dn: uid=${uid},ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@example.com\n`;

let ldap: Slapd;
let dir: string;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  ldap = await startSlapd({ generatedUsers: USERS });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13q-seed-'));
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a seeded snapshot carried through restarts and incremental syncs (real slapd)', () => {
  test('every address still found, from memory and from the file, at each step', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'seeded.snapshot'), interval: '1h', incrementalInterval: '1h', detectRemovals: true },
      log: { level: 'silent' },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
    closers.push(() => directory.close());
    const start = async (): Promise<SnapshotSync> => {
      const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
      const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
      closers.push(() => sync.stop());
      return sync;
    };
    const seedOf = async () => (JSON.parse((await readFile(config.sync.snapshotPath!, 'utf8')).split('\n')[1]!) as { hashSeed: number }).hashSeed;
    const missing = (sync: SnapshotSync, addresses: string[]) => addresses.filter((a) => sync.current!.get(a) !== a);
    const users = (from: number, to: number, prefix = 'user') => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}@example.com`);

    const first = await start();
    await first.full();
    const seed = await seedOf();
    assert.deepEqual(missing(first, users(1, USERS)), [], 'after the full sync');

    const second = await start();
    assert.equal(await second.load(), true, 'the restart loads the file');
    assert.deepEqual(missing(second, users(1, USERS)), [], 'after the restart');

    // Changes while the loaded store serves: as many new users again (its indexes grow), one changed.
    await ldap.modify(Array.from({ length: ADDED }, (_, i) => added(`new${i + 1}`)).join('\n'));
    await ldap.modify('dn: uid=user7,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: renamed7@example.com\n');
    await second.incremental();
    const now = [...users(1, 6), ...users(8, USERS), ...users(1, ADDED, 'new'), 'renamed7@example.com'];
    assert.deepEqual(missing(second, now), [], 'after the incremental sync');
    assert.equal(second.current!.get('user7@example.com'), undefined);
    assert.equal(await seedOf(), seed, 'the file keeps its seed across incremental syncs');

    const third = await start();
    assert.equal(await third.load(), true, 'the next restart loads the file again');
    assert.deepEqual(missing(third, now), [], 'after the second restart');
    await third.incremental();
    assert.deepEqual(missing(third, now), [], 'after an incremental sync of the reloaded store');
    await third.full();
    assert.notEqual(await seedOf(), seed, 'a full sync draws a new seed');
    const fourth = await start();
    assert.equal(await fourth.load(), true);
    assert.deepEqual(missing(fourth, now), [], 'after the full sync and a restart');
  });
});
