/**
 * A leaver moved out of the search base is dropped at the next incremental sync (README,
 * "Change-driven sync"): the sync lists changes in the naming context above the base. That
 * context was taken to be the base's trailing dc= components, so a base that is itself a dc=
 * entry below the suffix (dc=staff,dc=example,dc=com, as directories split by domain or
 * tenant are laid out) counted as the whole tree: a leaver moved beside it stayed valid in the
 * snapshot until the next full sync, while live lookups answered it unknown at once. The
 * directory's own namingContexts (rootDSE) name the context; where the account may not read the
 * rootDSE (`access to dn.base="" by * none`, common in hardened directories) the base's parent
 * does. Real slapd, its rootDSE open and closed to the service account.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from 'ldapts';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const STAFF = `dc=staff,${BASE}`;
const person = (uid: string, parent: string) =>
  `dn: uid=${uid},${parent}\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@staff.example.com\n`;

/** Entries the service account gets from a base search of the rootDSE. */
async function rootDseEntries(ldap: Slapd): Promise<number> {
  const client = new Client({ url: ldap.url });
  await client.bind(ldap.serviceDN, ldap.servicePassword);
  const n = await client.search('', { scope: 'base', attributes: ['namingContexts'] }).then((r) => r.searchEntries.length, () => 0);
  await client.unbind();
  return n;
}

for (const rootDseReadable of [true, false]) {
  describe(`a search base that is a dc= entry below the naming context, the rootDSE ${rootDseReadable ? 'readable' : 'unreadable'}`, () => {
    let ldap: Slapd;
    let dir: string;
    const closers: Array<() => Promise<void>> = [];

    before(async () => {
      ldap = await startSlapd({
        ldifText: [`dn: ${STAFF}\nobjectClass: domain\ndc: staff\n`, `dn: ou=leavers,${BASE}\nobjectClass: organizationalUnit\nou: leavers\n`, person('leaver', STAFF), person('stayer', STAFF)],
      });
      if (!rootDseReadable) {
        // The rootDSE is read through the frontend's access rules (the global section of slapd.conf).
        const conf = path.join(ldap.dir, 'slapd.conf');
        const text = await readFile(conf, 'utf8');
        await ldap.stop();
        await writeFile(conf, text.replace('database mdb', 'access to dn.base="" by * none\ndatabase mdb'));
        await ldap.start();
      }
      dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-dc-base-'));
    });

    after(async () => {
      for (const close of closers.reverse()) await close().catch(() => undefined);
      await ldap?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('a leaver moved out of it drops out at the next incremental sync, as live lookups say', async () => {
      const config = validateConfig({
        domains: ['staff.example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: STAFF, bindDN: ldap.serviceDN, timeout: '10s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'staff.snapshot'), interval: '1h', incrementalInterval: '1h', detectRemovals: true },
        log: { level: 'silent' },
      });
      const metrics = new Metrics({ defaultMetrics: false });
      const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
      closers.push(() => directory.close());
      const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
      const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
      closers.push(() => sync.stop());
      await sync.full();
      if (!rootDseReadable) assert.equal(await rootDseEntries(ldap), 0, 'the service account cannot read the rootDSE');
      assert.equal(sync.current!.get('leaver@staff.example.com'), 'leaver@staff.example.com');

      await ldap.modify(`dn: uid=leaver,${STAFF}\nchangetype: modrdn\nnewrdn: uid=leaver\ndeleteoldrdn: 1\nnewsuperior: ou=leavers,${BASE}\n`);
      await sync.incremental();
      const live = (await directory.lookup('leaver@staff.example.com')).entry;
      const snapshot = sync.current!.get('leaver@staff.example.com') ?? null;
      assert.equal(live, null, 'live lookups no longer find the leaver');
      assert.equal(snapshot, null, 'nor does the snapshot');
      assert.equal(sync.current!.get('stayer@staff.example.com'), 'stayer@staff.example.com');
    });
  });
}
