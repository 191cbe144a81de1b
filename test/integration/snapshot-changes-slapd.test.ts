/**
 * Removals between full syncs (sync.detectRemovals) against a real slapd: an incremental sync
 * drops an entry that was disabled (no longer matches the filter), the old DN of a renamed
 * entry, and an address taken off an entry. A deletion leaves nothing to read on OpenLDAP
 * without syncrepl, which ldapts cannot carry: it waits for the next full sync, and this test
 * pins that down too. With detectRemovals off, the disabled entry stays until the full sync.
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

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapshot-changes-'));
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configFor(name: string, detectRemovals: boolean): Config {
  return validateConfig({
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, filter: DISABLED_EXCLUDING_FILTER, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, name), interval: '1h', incrementalInterval: '1h', detectRemovals },
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
  return sync;
}

describe('change-driven removals against slapd', { concurrency: false }, () => {
  test('without detectRemovals a disabled entry stays in the snapshot until the next full sync', async () => {
    const sync = await syncer(configFor('off', false));
    assert.equal(sync.current!.get('first-last@example.com'), 'first-last@example.com');
    await ldap.modify('dn: uid=first-last,ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n');
    await sync.incremental();
    assert.equal(sync.current!.get('first-last@example.com'), 'first-last@example.com');
    await sync.full();
    assert.equal(sync.current!.get('first-last@example.com'), undefined);
  });

  test('an incremental sync drops disabled entries, renamed DNs and removed addresses', async () => {
    const sync = await syncer(configFor('on', true));
    const store = () => sync.current!;
    assert.equal(store().get('bob@example.com'), 'bob@example.com');
    assert.equal(store().get('carol.mixed@example.com'), 'Carol.Mixed@example.com');
    assert.equal(store().get('alice.smith@example.com'), 'alice@example.com');

    await ldap.modify('dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n');
    await ldap.modify('dn: uid=carol,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=caroline\ndeleteoldrdn: 1\n');
    await ldap.modify('dn: uid=alice,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: mail\nmail: alice.smith@example.com\n');
    const started = Date.now();
    const report = await sync.incremental();
    const ms = Date.now() - started;
    console.log(`[snapshot-changes-slapd] incremental sync with removals: ${ms} ms, ${report.changed} changed`);

    assert.equal(store().get('bob@example.com'), undefined, 'disabled entry dropped');
    assert.equal(store().hasDn('uid=bob,ou=people,dc=example,dc=com'), false);
    assert.equal(store().get('carol.mixed@example.com'), 'Carol.Mixed@example.com', 'renamed entry keeps its address');
    assert.deepEqual(store().holders('carol.mixed@example.com'), ['uid=caroline,ou=people,dc=example,dc=com'], 'under its new DN only');
    assert.equal(store().hasDn('uid=carol,ou=people,dc=example,dc=com'), false);
    assert.equal(store().get('alice.smith@example.com'), undefined, 'removed address dropped');
    assert.equal(store().get('alice@example.com'), 'alice@example.com');
    assert.equal(store().get('dave@example.org'), 'dave@example.org', 'unchanged entries stay');
  });

  test('an OpenLDAP deletion is not visible to an incremental sync; the next full sync drops it', async () => {
    const sync = await syncer(configFor('delete', true));
    await ldap.modify('dn: uid=dave,ou=people,dc=example,dc=com\nchangetype: delete\n');
    await sync.incremental();
    assert.equal(sync.current!.get('dave@example.org'), 'dave@example.org');
    await sync.full();
    assert.equal(sync.current!.get('dave@example.org'), undefined);
  });
});
