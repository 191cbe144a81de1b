/**
 * The search base renamed, an alias left at the old name (see attack-r12a-alias-base): lookups
 * and full syncs follow the alias at the base, but the incremental sync searched with aliases
 * never followed, so it saw no change at all under such a base: a user added stayed unknown in
 * the snapshot until the next full sync (hours), answered 550 where `sync.confirmMisses` is off.
 * Real slapd, the real service with its incremental sync running.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const PEOPLE = `ou=people,${BASE}`;

describe('incremental syncs under a search base that is an alias', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12m-alias-'));
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a user added under the aliased base is in the snapshot after the next incremental sync', async () => {
    await ldap.modify(`dn: ${PEOPLE}\nchangetype: modrdn\nnewrdn: ou=staff\ndeleteoldrdn: 1\n`);
    await ldap.modify(`dn: ${PEOPLE}\nchangetype: add\nobjectClass: alias\nobjectClass: extensibleObject\nou: people\naliasedObjectName: ou=staff,${BASE}\n`);
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: PEOPLE, bindDN: ldap.serviceDN, timeout: '2s' } },
        // Misses not asked live: the snapshot's answer is the answer.
        sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1s', confirmMisses: false },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
    await app.syncOnce();
    assert.equal(await ask('bob@example.com'), 'valid/snapshot', 'the full sync listed the users through the alias');
    assert.equal(await ask('newhire@example.com'), 'unknown/snapshot', 'not there yet');

    await ldap.modify(`dn: uid=newhire,ou=staff,${BASE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newhire\ncn: New Hire\nsn: Hire\nmail: newhire@example.com\n`);
    let verdict = '';
    for (let i = 0; i < 40 && verdict !== 'valid/snapshot'; i++) {
      await sleep(500);
      verdict = await ask('newhire@example.com');
    }
    assert.equal(verdict, 'valid/snapshot', 'the incremental sync saw the new user within 20 s');
  });

  test('a user whose address is taken away under the aliased base leaves the snapshot at the next incremental sync', async () => {
    const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
    await ldap.modify(`dn: uid=bob,ou=staff,${BASE}\nchangetype: modify\ndelete: mail\n`);
    let verdict = '';
    for (let i = 0; i < 40 && verdict !== 'unknown/snapshot'; i++) {
      await sleep(500);
      verdict = await ask('bob@example.com');
    }
    assert.equal(verdict, 'unknown/snapshot', 'the incremental sync saw the change within 20 s (not left for the full sync, an hour later)');
  });
});
