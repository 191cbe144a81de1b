/**
 * The wall clock stepped back (an NTP step after a boot with a wrong RTC, a VM restored from a
 * snapshot) while rcptgate holds a cached "no such entry": the negative must still expire after
 * `cache.negativeTtl` of real time, or a user created meanwhile is rejected for as long as the
 * step. Likewise a lookup whose search hangs as the clock steps must still fail at its deadline,
 * not an hour later (its queue slot, its search slot and the hung connection held all that time).
 * We cannot step the shared machine's clock in a test, so Date.now is mocked to the stepped
 * wall clock (the only fake); slapd and every socket are real.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a wall clock stepped back', () => {
  let ldap: Slapd;
  let dir: string;
  let app: App | undefined;
  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-clock-'));
  });
  afterEach(() => mock.restoreAll());
  after(async () => {
    await app?.close();
    await ldap?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a cached negative expires after negativeTtl of real time, not of wall-clock time', async () => {
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
      cache: { negativeTtl: '1s' },
      log: { level: 'silent' },
    }));
    // The wall clock from the start (modules keep a reference to Date.now), stepped below.
    const wall = Date.now.bind(Date);
    let step = 0;
    mock.method(Date, 'now', () => wall() + step);
    process.env.RCPTGATE_LDAP_BIND_PASSWORD = ldap.servicePassword;
    try {
      app = await createApp({ loaded: loadConfig(file, process.env), logger: silentLogger() });
    } finally {
      delete process.env.RCPTGATE_LDAP_BIND_PASSWORD;
    }
    await app.start();
    const ask = async () => (await app!.validator.lookup('newcomer@example.com', { frontend: 'http' })).verdict;
    assert.equal(await ask(), 'unknown', 'not created yet');

    step = -3_600_000;
    await ldap.modify(`dn: uid=newcomer,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: newcomer
cn: Newcomer
sn: Newcomer
mail: newcomer@example.com
`);
    await sleep(1_500);
    assert.equal(await ask(), 'valid', 'the negative answer outlived negativeTtl because the wall clock went back an hour');
  });

  test('a lookup whose search hangs while the wall clock steps back still fails at its deadline', async () => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '500ms', poolSize: 1 } },
    }).directory.ldap;
    const dir = new LdapDirectory({ config, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    try {
      assert.ok((await dir.lookup('bob@example.com')).entry);
      await ldap.pause();
      try {
        const started = performance.now();
        const hung = dir.lookup('alice@example.com').catch((err: unknown) => err);
        await sleep(100);
        const wall = Date.now.bind(Date);
        mock.method(Date, 'now', () => wall() - 3_600_000);
        const outcome = await Promise.race([hung, sleep(5_000, 'still waiting after 5 s')]);
        assert.ok(outcome instanceof DirectoryError, `expected the lookup to fail at its deadline, got: ${String(outcome)}`);
        assert.equal(outcome.code, ErrorCodes.DIRECTORY_TIMEOUT);
        assert.ok(performance.now() - started < 3_000, `took ${Math.round(performance.now() - started)} ms`);
      } finally {
        ldap.resume();
      }
    } finally {
      await dir.close();
    }
  });

  test('an incremental sync after the clock stepped back still lists what changed since the last sync', async () => {
    const config = configSchema.parse({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'recipients.snapshot'), detectRemovals: false },
    });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    // The full sync runs while the clock is an hour ahead (a wrong RTC at boot); NTP then steps it back.
    let ahead = 3_600_000;
    const sync = new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: () => undefined, now: () => Date.now() + ahead });
    try {
      await sync.full();
      ahead = 0;
      await ldap.modify(`dn: uid=latecomer,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: latecomer
cn: Latecomer
sn: Latecomer
mail: latecomer@example.com
`);
      await sync.incremental();
      assert.equal(sync.current?.get('latecomer@example.com'), 'latecomer@example.com', 'the incremental sync asked for changes since an hour ahead and missed the new user');
    } finally {
      await sync.stop();
      await directory.close();
    }
  });
});
