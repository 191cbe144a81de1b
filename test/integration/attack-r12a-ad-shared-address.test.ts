/**
 * One address on two AD objects, one of which is then disabled or deleted (a careless admin
 * leaves an old account's proxy address on a new contact). The snapshot's incremental syncs
 * (detectRemovals) drop the disabled account, and must keep the address for the object still
 * holding it; once that one is deleted too, the address is gone live at once and from the
 * snapshot at the next full sync (a tombstone the service account may not read). Live lookups
 * agree at each step.
 * A real Samba DC. Probes that held.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

describe('an address held by two AD objects, one disabled, then the other deleted', () => {
  let dc: SambaDC;
  let dir: string;
  before(async () => {
    dc = await startSambaDC({ bulkUsers: 30 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-shared-'));
    const users = `CN=Users,${dc.baseDN}`;
    await dc.modify(
      `dn: CN=Sam Old,${users}\nobjectClass: user\nsAMAccountName: samold\nuserAccountControl: 512\nmail: sam@ad.example.com\nproxyAddresses: SMTP:sam@ad.example.com\nproxyAddresses: smtp:sales-old@ad.example.com\n\n` +
        `dn: CN=Sales Contact,${users}\nobjectClass: contact\nmail: sales@partner.example\nproxyAddresses: SMTP:sales-old@ad.example.com\n`,
    );
  });
  after(async () => {
    await dc?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the snapshot and live lookups keep the address while one enabled object holds it', async () => {
    const config = validateConfig({
      domains: ['ad.example.com'],
      directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'ad.snapshot'), interval: '1h', incrementalInterval: '1h', detectRemovals: true },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.servicePassword, metrics, logger: silentLogger() });
    const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword }, silentLogger());
    const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
    const live = async (address: string): Promise<boolean> => (await directory.lookup(address)).entry !== null;
    try {
      await sync.full();
      assert.notEqual(sync.current!.get('sales-old@ad.example.com'), undefined);
      assert.equal(sync.current!.holders('sales-old@ad.example.com').length, 2);

      await dc.disableUser('samold');
      await sync.incremental();
      assert.equal(sync.current!.get('sam@ad.example.com'), undefined, 'the disabled account drops out');
      assert.equal(sync.current!.get('sales-old@ad.example.com'), 'sales-old@ad.example.com', 'the contact still holds it');
      assert.equal(await live('sales-old@ad.example.com'), true);
      assert.equal(await live('sam@ad.example.com'), false);

      // A deletion leaves a tombstone the service account may not read: it waits for the full sync (README).
      await dc.modify(`dn: CN=Sales Contact,CN=Users,${dc.baseDN}\nchangetype: delete\n`);
      assert.equal(await live('sales-old@ad.example.com'), false);
      await sync.full();
      assert.equal(sync.current!.get('sales-old@ad.example.com'), undefined, 'deleted: nobody holds it');
      assert.equal(sync.current!.get('sam@ad.example.com'), undefined);
    } finally {
      await sync.stop();
      await directory.close();
    }
  });
});
