/**
 * A careless directory administrator takes the search base away under a running service: renames
 * it (no alias left behind), or turns it into a referral object naming another server. Every
 * search then fails at the base (noSuchObject, or a referral). Held: live lookups defer, never
 * "no such entry"; a full sync fails and the snapshot it would have emptied stays and keeps
 * answering; health says the directory is down and why. Real slapd, the real service.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const PEOPLE = `ou=people,${BASE}`;

const config = (ldap: Slapd, snapshotPath: string | null) => ({
  listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
  domains: ['example.com'],
  cache: { positiveTtl: '1ms', negativeTtl: '1ms' },
  directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: PEOPLE, bindDN: ldap.serviceDN, timeout: '2s' } },
  sync: snapshotPath === null ? { enabled: false } : { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' },
  log: { level: 'silent' },
});

const takeAway = {
  renamed: (ldap: Slapd) => ldap.modify(`dn: ${PEOPLE}\nchangetype: modrdn\nnewrdn: ou=staff\ndeleteoldrdn: 1\n`),
  'a referral object': async (ldap: Slapd) => {
    await ldap.modify(`dn: ${PEOPLE}\nchangetype: modrdn\nnewrdn: ou=staff\ndeleteoldrdn: 1\n`);
    await ldap.modify(`dn: ${PEOPLE}\nchangetype: add\nobjectClass: referral\nobjectClass: extensibleObject\nou: people\nref: ldap://127.0.0.1:1/${PEOPLE}\n`);
  },
};

describe('the search base taken away under a running service (real slapd)', { concurrency: false }, () => {
  let ldap: Slapd | undefined;
  let dir: string | undefined;
  const apps: Awaited<ReturnType<typeof startApp>>[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await ldap?.close();
    ldap = undefined;
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const [how, change] of Object.entries(takeAway)) {
    test(`base ${how}: lookups defer, a full sync keeps the snapshot, health says why`, async () => {
      ldap = await startSlapd();
      dir = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13k-base-')));
      const live = await startApp(config(ldap, null), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
      const synced = await startApp(config(ldap, path.join(dir, `snapshot-${how.replace(/ /g, '-')}`)), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
      apps.push(live, synced);
      await synced.syncOnce();
      assert.equal(await verdictOf(live.addresses.http!.port, 'bob@example.com'), 'valid/directory');
      const entries = synced.health().snapshot.entries;
      assert.ok(entries > 5);

      await change(ldap);
      // An address answered valid before is served stale through a directory error (cache.staleIfError).
      assert.match(await verdictOf(live.addresses.http!.port, 'bob@example.com'), /^(valid\/stale|tempfail\/directory)$/);
      for (const address of ['user3@example.com', 'nobody@example.com']) {
        assert.equal(await verdictOf(live.addresses.http!.port, address), 'tempfail/directory', `${address}, live`);
      }
      await assert.rejects(synced.syncOnce(), `a full sync with the base ${how} fails`);
      assert.equal(synced.health().snapshot.entries, entries, 'the snapshot is kept whole');
      assert.equal(await verdictOf(synced.addresses.http!.port, 'user3@example.com'), 'valid/snapshot');
      // Never unknown on the directory's word now; the snapshot's own "no" may stand or defer.
      assert.match(await verdictOf(synced.addresses.http!.port, 'nobody@example.com'), /^(unknown\/snapshot|tempfail\/directory)$/);
      let health = live.health();
      for (let i = 0; i < 40 && health.directory.up; i++) {
        await sleep(100);
        health = live.health();
      }
      assert.equal(health.directory.up, false, 'the live service counts the directory down');
      assert.match(health.directory.lastError ?? '', /base DN|referral/i);
    });
  }
});
