/**
 * Snapshot mode, the default `confirmMisses: true`: a user added after a sync is asked live and
 * its valid answer cached. Whether a later miss of the snapshot supersedes that answer depends on
 * when it was cached, read from its expiry less `cache.positiveTtl`. A reload that raises
 * positiveTtl keeps the cache, so the answer looked cached before the listing: dropped, and
 * during a directory outage the new user's mail was deferred instead of accepted from the cache.
 * Real slapd, the real service, a real reload from a config file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { verdictOf } from '../helpers/http-verdict.js';

const PEOPLE = 'ou=people,dc=example,dc=com';

describe('a reload raising cache.positiveTtl does not make answers cached after a sync look older than it', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>>;
  const config = (positiveTtl: string) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
    cache: { positiveTtl },
    sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-supersede-ttl-'));
    app = await startApp(config('10m'), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  });
  after(async () => {
    await app?.close();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, address);

  test('a user added after the sync stays valid from the cache during an outage after positiveTtl 10m -> 1h', async () => {
    await app.syncOnce();
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
    await ldap.modify(`dn: uid=newbie,${PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: newbie\nsn: newbie\nuid: newbie\nmail: newbie@example.com\n`);
    assert.equal(await ask('newbie@example.com'), 'valid/directory', 'added after the sync: asked live');
    const file = path.join(dir, 'rcptgate.json');
    await writeFile(file, JSON.stringify(config('1h')));
    assert.equal(await app.reload(file), true, 'the reload is applied');
    await ldap.pause();
    assert.equal(await ask('newbie@example.com'), 'valid/cache', 'cached after the listing: kept');
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
  });
});
