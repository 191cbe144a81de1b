/**
 * A careless directory admin between two incremental syncs, against a real slapd: an address
 * moved from one user to another (the old owner keeps other addresses, or had only that one),
 * and entries deleted and re-added under the same DN (with another address, disabled, without
 * any). After the next incremental sync the snapshot must hold each address for its new owner
 * only, and nothing for an owner that lost it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { DISABLED_EXCLUDING_FILTER, startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
const closers: Array<() => Promise<void>> = [];
const people = 'ou=people,dc=example,dc=com';

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-address-moves-'));
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configFor(name: string): Config {
  return validateConfig({
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, filter: DISABLED_EXCLUDING_FILTER, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, name), interval: '1h', incrementalInterval: '1h', detectRemovals: true },
    log: { level: 'silent' },
  });
}

async function syncer(config: Config): Promise<SnapshotSync> {
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  closers.push(async () => {
    await sync.stop();
    await directory.close();
  });
  await sync.full();
  await sync.incremental();
  return sync;
}

const person = (uid: string, extra: string) => `dn: uid=${uid},${people}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: ${uid}\nsn: ${uid}\nuid: ${uid}\n${extra}\n`;

describe('addresses moved and entries re-created between incremental syncs', { concurrency: false }, () => {
  test('an address moved to another user is held by the new owner only after the next incremental sync', async () => {
    const sync = await syncer(configFor('moves'));
    const s = () => sync.current!;
    assert.equal(s().get('ally@example.com'), 'alice@example.com');
    assert.equal(s().get('carol.mixed@example.com'), 'Carol.Mixed@example.com');
    // alice keeps her other addresses; carol had only this one (and no longer matches the filter).
    await ldap.modify(`dn: uid=alice,${people}\nchangetype: modify\ndelete: mailAlternateAddress\nmailAlternateAddress: ally@example.com\n`);
    await ldap.modify(`dn: uid=bob,${people}\nchangetype: modify\nadd: mail\nmail: ally@example.com\n`);
    await ldap.modify(`dn: uid=carol,${people}\nchangetype: modify\ndelete: mail\n`);
    await ldap.modify(`dn: uid=dave,${people}\nchangetype: modify\nadd: mail\nmail: Carol.Mixed@example.com\n`);
    await sync.incremental();
    assert.equal(s().get('ally@example.com'), 'bob@example.com', 'valid, as the new owner');
    assert.deepEqual(s().holders('ally@example.com'), [`uid=bob,${people}`]);
    assert.equal(s().get('alice@example.com'), 'alice@example.com', 'the old owner keeps her other addresses');
    assert.equal(s().get('carol.mixed@example.com'), 'dave@example.org');
    assert.deepEqual(s().holders('carol.mixed@example.com'), [`uid=dave,${people}`]);
    assert.equal(s().hasDn(`uid=carol,${people}`), false, 'the old owner without an address is gone');
    // Moved back in the next window: the same holds the other way round.
    await ldap.modify(`dn: uid=bob,${people}\nchangetype: modify\ndelete: mail\nmail: ally@example.com\n`);
    await ldap.modify(`dn: uid=alice,${people}\nchangetype: modify\nadd: mailAlternateAddress\nmailAlternateAddress: ally@example.com\n`);
    await sync.incremental();
    assert.deepEqual(s().holders('ally@example.com'), [`uid=alice,${people}`]);
    assert.equal(s().get('bob@example.com'), 'bob@example.com');
  });

  test('entries deleted and re-added under the same DN are read as they are now', async () => {
    const sync = await syncer(configFor('recreated'));
    const s = () => sync.current!;
    for (const u of ['user1', 'user2', 'user3']) assert.equal(s().get(`${u}@example.com`), `${u}@example.com`);
    for (const u of ['user1', 'user2', 'user3']) await ldap.modify(`dn: uid=${u},${people}\nchangetype: delete\n`);
    await ldap.modify(person('user1', 'mail: user1.new@example.com'));
    await ldap.modify(person('user2', 'mail: user2@example.com\nemployeeType: disabled'));
    await ldap.modify(person('user3', 'description: no address any more'));
    await sync.incremental();
    assert.equal(s().get('user1@example.com'), undefined, 'the address the re-added entry no longer has');
    assert.equal(s().get('user1.new@example.com'), 'user1.new@example.com');
    assert.equal(s().get('user2@example.com'), undefined, 're-added disabled');
    assert.equal(s().get('user3@example.com'), undefined, 're-added without an address');
    assert.equal(s().get('user4@example.com'), 'user4@example.com', 'the others stay');
  });
});
