/**
 * Snapshot mode with cache.persistPath: a user added after the last sync is asked live and its
 * valid answer saved at the stop. Restarted during a directory outage with a longer
 * cache.positiveTtl, the older snapshot file misses the user; whether the loaded answer is newer
 * than the snapshot's listing was read from its expiry less the new TTL, so it looked older and
 * was dropped: the user's mail deferred. Real slapd, the real service stopped and started again
 * on the same files.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { verdictOf } from '../helpers/http-verdict.js';

const PEOPLE = 'ou=people,dc=example,dc=com';

describe('a restart with a longer cache.positiveTtl keeps the loaded answers newer than the snapshot', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const config = (positiveTtl: string) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
    cache: { positiveTtl, persistPath: path.join(dir, 'answers') },
    sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-supersede-restart-'));
  });
  after(async () => {
    await app?.close();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);

  test('positiveTtl 10m -> 1h across a restart during an outage: the user added after the sync stays valid', async () => {
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    app = await startApp(config('10m'), env);
    await app.syncOnce();
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
    await ldap.modify(`dn: uid=newbie,${PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: newbie\nsn: newbie\nuid: newbie\nmail: newbie@example.com\n`);
    assert.equal(await ask('newbie@example.com'), 'valid/directory', 'added after the sync: asked live');
    await app.close(); // saves the answers
    app = undefined;
    await ldap.pause();
    app = await startApp(config('1h'), env);
    assert.equal(await ask('bob@example.com'), 'valid/snapshot', 'the snapshot file is loaded');
    assert.equal(await ask('newbie@example.com'), 'valid/cache', 'cached after the listing: kept');
  });
});
