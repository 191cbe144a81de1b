/**
 * Snapshot mode with the default `confirmMisses: true`: a user added after a sync is asked live,
 * and the valid answer is cached for `cache.positiveTtl` (1h). When that user is disabled or
 * deleted, the next sync drops the entry from the snapshot, but the cached answer still said
 * valid for the rest of its hour: mail accepted for a leaver (backscatter), and during an outage
 * served as stale-if-error. The sync's listing is newer knowledge than the cached answer.
 * Real slapd, the real service; `syncOnce` (a full sync, as `rcptgate sync` runs) stands in for
 * the periodic syncs so the order of events is certain.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { DISABLED_EXCLUDING_FILTER, startSlapd, type Slapd } from '../helpers/slapd.js';
import { verdictOf } from '../helpers/http-verdict.js';

const PEOPLE = 'ou=people,dc=example,dc=com';

function person(uid: string): string {
  return `dn: uid=${uid},${PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: ${uid}\nsn: ${uid}\nuid: ${uid}\nmail: ${uid}@example.com\n`;
}

describe('a snapshot sync supersedes valid answers cached before it', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>>;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-superseded-'));
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, filter: DISABLED_EXCLUDING_FILTER, timeout: '1s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1h' },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, address);

  test('a leaver disabled or deleted is refused (or deferred while the directory is down) after the next sync, not valid from the cache', async () => {
    await app.syncOnce();
    assert.equal(await ask('bob@example.com'), 'valid/snapshot', 'the snapshot is served');
    await ldap.modify(`${person('leaver')}\n${person('gone')}`);
    assert.equal(await ask('leaver@example.com'), 'valid/directory', 'added after the sync: asked live');
    assert.equal(await ask('gone@example.com'), 'valid/directory');
    assert.equal(await ask('leaver@example.com'), 'valid/cache');

    await ldap.modify(`dn: uid=leaver,${PEOPLE}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n\ndn: uid=gone,${PEOPLE}\nchangetype: delete\n`);
    await app.syncOnce(); // neither entry is in its listing
    await ldap.modify(person('newcomer'));
    assert.equal(await ask('newcomer@example.com'), 'valid/directory', 'added after this sync: asked live');

    assert.equal(await ask('leaver@example.com'), 'unknown/directory', 'the disabled leaver, asked again');
    await ldap.pause();
    assert.equal(await ask('gone@example.com'), 'tempfail/directory', 'the deleted user, while the directory cannot answer');
    assert.equal(await ask('newcomer@example.com'), 'valid/cache', 'an answer cached after the sync is newer than its listing: kept');
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
  });
});
