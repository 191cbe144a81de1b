/**
 * The search base renamed, an alias left at the old name: a directory admin moves ou=people to
 * ou=staff (modrdn of the subtree) and adds an alias entry ou=people -> ou=staff, the usual way to
 * keep old names working. Searches were sent with derefAliases "never", so slapd searched the
 * alias entry itself: success, no entries. Every real user was answered unknown (550) while the
 * probe, which expects no entry, kept the service ready; full syncs listed nothing. The base is
 * now dereferenced when it is found (derefFindingBaseObj); aliases below it are still not
 * followed. A dangling alias at the base is a directory error, never unknown. Real slapd, the
 * real service.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const PEOPLE = `ou=people,${BASE}`;

/** Renames ou=people to `to` and leaves an alias at the old name pointing at `target`. */
async function renameLeavingAlias(ldap: Slapd, to: string, target: string): Promise<void> {
  await ldap.modify(`dn: ${PEOPLE}\nchangetype: modrdn\nnewrdn: ou=${to}\ndeleteoldrdn: 1\n`);
  await ldap.modify(`dn: ${PEOPLE}\nchangetype: add\nobjectClass: alias\nobjectClass: extensibleObject\nou: people\naliasedObjectName: ${target}\n`);
}

const config = (ldap: Slapd, snapshotPath: string | null) => ({
  listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
  domains: ['example.com'],
  directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: PEOPLE, bindDN: ldap.serviceDN, timeout: '2s' } },
  sync: snapshotPath === null ? { enabled: false } : { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' },
  log: { level: 'silent' },
});

describe('a search base that is an alias (renamed, the old name left as an alias)', { concurrency: false }, () => {
  let ldap: Slapd;
  let dir: string;
  const apps: Awaited<ReturnType<typeof startApp>>[] = [];
  const start = async (snapshotPath: string | null) => {
    const app = await startApp(config(ldap, snapshotPath), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    apps.push(app);
    return Object.assign((address: string): Promise<string> => verdictOf(app.addresses.http!.port, address), { app });
  };

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-alias-'));
  });
  after(async () => {
    for (const app of apps) await app.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('users under the alias are found live, and by a full sync', async () => {
    const ask = await start(null);
    assert.equal(await ask('bob@example.com'), 'valid/directory', 'before the rename');
    await renameLeavingAlias(ldap, 'staff', `ou=staff,${BASE}`);
    // Not cached before: asked live through the alias.
    for (const address of ['alice@example.com', 'ally@example.com', 'carol.mixed@example.com', 'user3@example.com']) {
      assert.equal(await ask(address), 'valid/directory', address);
    }
    assert.equal(await ask('nobody@example.com'), 'unknown/directory', 'an address nobody holds is still unknown');

    // A full sync reads every entry through the alias (an empty listing would be refused: no snapshot).
    const fromSnapshot = await start(path.join(dir, 'snapshot'));
    await fromSnapshot.app.syncOnce();
    for (const address of ['user4@example.com', 'first-last@example.com']) assert.equal(await fromSnapshot(address), 'valid/snapshot', address);
  });

  test('an alias at the base that points nowhere defers, never "no such entry"', async () => {
    const ask = await start(null);
    await ldap.modify(`dn: ou=staff,${BASE}\nchangetype: modrdn\nnewrdn: ou=team\ndeleteoldrdn: 1\n`);
    for (const address of ['user5@example.com', 'nobody2@example.com']) assert.equal(await ask(address), 'tempfail/directory', address);
  });
});
