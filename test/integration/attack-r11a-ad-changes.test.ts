/**
 * Incremental syncs against a real Active Directory DC (Samba 4): the window is asked by the
 * DC's own clock (rootDSE currentTime), and a careless admin's changes between two incremental
 * syncs are read as they are now: an address moved from one user to another, and a contact
 * deleted and re-created under the same DN with another address.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
  dc = await startSambaDC({ bulkUsers: 5 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ad-changes-'));
  config = validateConfig({
    domains: ['ad.example.com', 'partner.example'],
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

describe('incremental syncs against Active Directory (Samba)', { concurrency: false }, () => {
  test("the window is read from the DC's clock (rootDSE currentTime), not from its newest change", async () => {
    const feed = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword }, silentLogger())!;
    // Nothing changes on the DC meanwhile: its newest whenChanged is at least 3 s old by now.
    await sleep(3000);
    const ours = Date.now();
    const theirs = await feed.now(undefined, ours);
    assert.notEqual(theirs, null, 'the DC publishes its time');
    // The DC runs on this machine's clock; currentTime has whole seconds.
    assert.ok(theirs! >= ours - 1500 && theirs! <= Date.now() + 1000, `currentTime ${theirs} against ours ${ours}`);
  });

  test('an address moved between users and a contact re-created under its DN are read as they are now', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.servicePassword, metrics, logger: silentLogger() });
    const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword }, silentLogger());
    const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
    closers.push(async () => {
      await sync.stop();
      await directory.close();
    });
    await sync.full();
    await sync.incremental();
    const s = () => sync.current!;
    const users = `CN=Users,${dc.baseDN}`;
    assert.equal(s().get('j.doe@ad.example.com'), 'jane@ad.example.com');
    assert.equal(s().get('partner@ad.example.com'), 'partner@ad.example.com');

    await dc.modify(`dn: CN=Jane Doe,${users}\nchangetype: modify\ndelete: proxyAddresses\nproxyAddresses: smtp:j.doe@ad.example.com\n`);
    await dc.modify(`dn: CN=bulk1,${users}\nchangetype: modify\nadd: proxyAddresses\nproxyAddresses: smtp:j.doe@ad.example.com\n`);
    await dc.modify(`dn: CN=Partner Contact,${users}\nchangetype: delete\n`);
    await dc.modify(`dn: CN=Partner Contact,${users}\nchangetype: add\nobjectClass: contact\ndisplayName: Partner Contact\nmail: partner@partner.example\nproxyAddresses: SMTP:partner.new@ad.example.com\n`);
    await sync.incremental();
    assert.equal(s().get('j.doe@ad.example.com'), 'bulk1@ad.example.com', 'valid, for its new owner');
    assert.deepEqual(s().holders('j.doe@ad.example.com'), [`CN=bulk1,${users}`]);
    assert.equal(s().get('jane@ad.example.com'), 'jane@ad.example.com');
    assert.equal(s().get('partner@ad.example.com'), undefined, 'the address the re-created contact no longer has');
    assert.equal(s().get('partner.new@ad.example.com'), 'partner.new@ad.example.com');
    assert.equal(s().get('partner@partner.example'), 'partner.new@ad.example.com');
  });

  test('a contact moved out of the base into an OU beside it drops out at the next incremental sync', async () => {
    const staff = `OU=Staff,${dc.baseDN}`;
    await dc.modify(`dn: ${staff}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: OU=Leavers,${dc.baseDN}\nchangetype: add\nobjectClass: organizationalUnit\n`);
    await dc.modify(`dn: CN=Mover,${staff}\nchangetype: add\nobjectClass: contact\nmail: mover@ad.example.com\n\ndn: CN=Stayer,${staff}\nchangetype: add\nobjectClass: contact\nmail: stayer@ad.example.com\n`);
    const c = validateConfig({ ...config, directory: { ...config.directory, ldap: { ...config.directory.ldap, baseDN: staff } }, sync: { ...config.sync, snapshotPath: path.join(dir, 'staff.snapshot') } });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: c.directory.ldap, bindPassword: dc.servicePassword, metrics, logger: silentLogger() });
    const changes = createChangeFeed(c, { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword }, silentLogger());
    const sync = new SnapshotSync({ config: c, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
    closers.push(async () => {
      await sync.stop();
      await directory.close();
    });
    await sync.full();
    assert.equal(sync.current!.get('mover@ad.example.com'), 'mover@ad.example.com');
    await dc.modify(`dn: CN=Mover,${staff}\nchangetype: modrdn\nnewrdn: CN=Mover\ndeleteoldrdn: 1\nnewsuperior: OU=Leavers,${dc.baseDN}\n`);
    await sync.incremental();
    assert.equal(sync.current!.get('mover@ad.example.com'), undefined, 'moved out of the base');
    assert.equal(sync.current!.get('stayer@ad.example.com'), 'stayer@ad.example.com');
  });
});
