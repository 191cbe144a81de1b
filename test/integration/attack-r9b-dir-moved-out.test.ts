/**
 * A leaver's entry is moved out of the search base (to ou=leavers, beside ou=people), the way
 * many directories retire accounts. An incremental sync with sync.detectRemovals saw nothing of
 * it: the moved entry is outside the base, so neither the listing of changes nor the listing of
 * changed entries that no longer match returns it, and its old DN shares its addresses with no
 * new DN inside the base. The snapshot answered the leaver valid until the next full sync,
 * where the README promises a move at the next incremental sync. Real slapd.
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
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';

const LEAVERS = `dn: ou=leavers,${BASE}\nobjectClass: organizationalUnit\nou: leavers`;

function syncer(ldap: Slapd, snapshotPath: string) {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: `ou=people,${BASE}`, bindDN: ldap.serviceDN, timeout: '10s' } },
    sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h', detectRemovals: true },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  return { directory, sync, metrics };
}

const moveOut = (ldap: Slapd, uid: string) =>
  ldap.modify(`dn: uid=${uid},ou=people,${BASE}\nchangetype: modrdn\nnewrdn: uid=${uid}\ndeleteoldrdn: 1\nnewsuperior: ou=leavers,${BASE}\n`);

describe('an entry moved out of the search base', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r9b-moved-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('drops out of the snapshot at the next incremental sync; entries moved within the base stay', async () => {
    const ldap = await startSlapd({ ldifText: [LEAVERS] });
    const { directory, sync } = syncer(ldap, path.join(dir, 'a.snapshot'));
    try {
      await sync.full();
      assert.equal(sync.current!.get('alice.smith@example.com'), 'alice@example.com');
      assert.equal(sync.current!.get('bob@example.com'), 'bob@example.com');

      // Alice leaves: moved to ou=leavers, outside the base. Bob moves within it (a new sub-OU).
      await moveOut(ldap, 'alice');
      await ldap.modify(`dn: ou=sales,ou=people,${BASE}\nchangetype: add\nobjectClass: organizationalUnit\nou: sales\n`);
      await ldap.modify(`dn: uid=bob,ou=people,${BASE}\nchangetype: modrdn\nnewrdn: uid=bob\ndeleteoldrdn: 1\nnewsuperior: ou=sales,ou=people,${BASE}\n`);
      await sync.incremental();
      for (const address of ['alice@example.com', 'alice.smith@example.com', 'ally@example.com']) assert.equal(sync.current!.get(address), undefined, address);
      assert.equal(sync.current!.get('bob@example.com'), 'bob@example.com');
      assert.equal(sync.current!.get('carol.mixed@example.com'), 'Carol.Mixed@example.com');
      // The live directory agrees: nothing under the base holds alice's addresses any more.
      assert.equal((await directory.lookup('alice@example.com')).entry, null);
    } finally {
      await sync.stop();
      await directory.close();
      await ldap.close();
    }
  });

  test('an account that may read only its base still gets its incremental syncs; moves out wait for the full sync', async () => {
    const ldap = await startSlapd({
      ldifText: [LEAVERS],
      accessLines: [`access to dn.subtree="ou=people,${BASE}" by * read`, `access to * by dn.exact="cn=rcptgate,ou=services,${BASE}" none by * read`],
    });
    const { directory, sync, metrics } = syncer(ldap, path.join(dir, 'b.snapshot'));
    try {
      await sync.full();
      await moveOut(ldap, 'alice');
      await ldap.modify(`dn: uid=bob,ou=people,${BASE}\nchangetype: modify\nreplace: mail\nmail: robert@example.com\n`);
      await sync.incremental();
      assert.equal((await metrics.syncFailures.get()).values.reduce((n, v) => n + v.value, 0), 0, 'an incremental sync failed');
      assert.equal(sync.current!.get('robert@example.com'), 'robert@example.com');
      assert.equal(sync.current!.get('bob@example.com'), undefined);
      assert.equal(sync.current!.get('alice@example.com'), 'alice@example.com');
      await sync.full();
      assert.equal(sync.current!.get('alice@example.com'), undefined);
    } finally {
      await sync.stop();
      await directory.close();
      await ldap.close();
    }
  });
});
