/**
 * Removals between full syncs against a real Active Directory DC (Samba 4): a disabled and a
 * renamed user are handled by one incremental sync under the read-only service account; a
 * deleted user too (from its tombstone, Show Deleted control) when the account may list
 * CN=Deleted Objects. The time from the deletion to the end of that sync is printed.
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
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

let dc: SambaDC;
let dir: string;
let config: Config;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  dc = await startSambaDC({ bulkUsers: 20 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapshot-changes-ad-'));
  config = validateConfig({
    domains: ['ad.example.com'],
    directory: {
      kind: 'ldap',
      ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' },
    },
    sync: { enabled: true, snapshotPath: path.join(dir, 'ad.snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await dc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function syncer(bindDN: string, password: string): Promise<SnapshotSync> {
  const c = validateConfig({ ...config, directory: { ...config.directory, ldap: { ...config.directory.ldap, bindDN } } });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: c.directory.ldap, bindPassword: password, metrics, logger: silentLogger() });
  const changes = createChangeFeed(c, { RCPTGATE_LDAP_BIND_PASSWORD: password }, silentLogger());
  const sync = new SnapshotSync({ config: c, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  closers.push(async () => {
    await sync.stop();
    await directory.close();
  });
  await sync.full();
  return sync;
}

describe('change-driven removals against Active Directory (Samba)', { concurrency: false }, () => {
  test('under the read-only service account one incremental sync drops a disabled user and the old DN of a renamed one', async () => {
    const sync = await syncer(dc.serviceDN, dc.servicePassword);
    const store = () => sync.current!;
    for (const k of [3, 4, 5, 6]) assert.equal(store().get(`bulk${k}@ad.example.com`), `bulk${k}@ad.example.com`);

    await dc.disableUser('bulk3');
    await dc.modify(`dn: CN=bulk5,CN=Users,${dc.baseDN}\nchangetype: modrdn\nnewrdn: CN=bulk5 renamed\ndeleteoldrdn: 1\n`);
    await dc.modify(`dn: CN=bulk4,CN=Users,${dc.baseDN}\nchangetype: delete\n`);
    await sync.incremental();

    assert.equal(store().get('bulk3@ad.example.com'), undefined, 'disabled user dropped');
    assert.equal(store().get('bulk5@ad.example.com'), 'bulk5@ad.example.com', 'renamed user keeps its address');
    assert.deepEqual(store().holders('bulk5@ad.example.com'), [`CN=bulk5 renamed,CN=Users,${dc.baseDN}`]);
    assert.equal(store().get('bulk6@ad.example.com'), 'bulk6@ad.example.com', 'unchanged users stay');
    // This account may not list CN=Deleted Objects (as in AD by default): the deletion waits for the full sync.
    assert.equal(store().get('bulk4@ad.example.com'), 'bulk4@ad.example.com');
    await sync.full();
    assert.equal(store().get('bulk4@ad.example.com'), undefined);
  });

  test('an account allowed to list deleted objects sees a deletion within one incremental sync', async () => {
    // The domain admin here; in production an account granted List Contents + Read Property on
    // CN=Deleted Objects (README, "Change-driven sync").
    const sync = await syncer(dc.adminDN, dc.adminPassword);
    assert.equal(sync.current!.get('bulk7@ad.example.com'), 'bulk7@ad.example.com');
    const changedAt = Date.now();
    await dc.modify(`dn: CN=bulk7,CN=Users,${dc.baseDN}\nchangetype: delete\n`);
    await sync.incremental();
    console.log(`[snapshot-changes-ad] deletion to end of the incremental sync that dropped it: ${Date.now() - changedAt} ms`);
    assert.equal(sync.current!.get('bulk7@ad.example.com'), undefined, 'deleted user dropped (tombstone)');
    assert.equal(sync.current!.hasDn(`CN=bulk7,CN=Users,${dc.baseDN}`), false);
    assert.equal(sync.current!.get('bulk8@ad.example.com'), 'bulk8@ad.example.com');
  });
});
