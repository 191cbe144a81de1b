/**
 * Snapshot mode against a real Active Directory DC (Samba 4, test/helpers/samba.ts): a full
 * sync holds every SMTP proxy address and mail of enabled users, groups and contacts, with
 * the `SMTP:` address as canonical; disabled accounts are absent; an incremental sync
 * (whenChanged) brings a new proxy address.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { readSnapshot } from '../../src/snapshot/file.js';
import { SnapshotSync, snapshotSource } from '../../src/snapshot/sync.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

const BULK_USERS = 1000;

let dc: SambaDC;
let dir: string;
let config: Config;
const apps: App[] = [];
const closers: Array<() => Promise<void>> = [];

before(async () => {
  dc = await startSambaDC({ bulkUsers: BULK_USERS });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapshot-ad-'));
  config = validateConfig({
    listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['ad.example.com'],
    directory: {
      kind: 'ldap',
      ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' },
    },
    sync: { enabled: true, snapshotPath: path.join(dir, 'ad.snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });
});

after(async () => {
  for (const app of apps) await app.close().catch(() => undefined);
  for (const close of closers) await close().catch(() => undefined);
  await dc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function newApp(): Promise<App> {
  const app = await createApp({ loaded: { config, file: null }, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword } });
  apps.push(app);
  return app;
}

async function answer(app: App, address: string): Promise<{ verdict: string; source: string; canonical?: string }> {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return { verdict: r.verdict, source: r.source, ...(r.canonical !== undefined ? { canonical: r.canonical } : {}) };
}

describe('snapshot mode against Active Directory (Samba)', { concurrency: false }, () => {
  let app: App;

  test('a full sync holds mail and SMTP proxy addresses of enabled recipients, canonical = the SMTP: address', async (t) => {
    app = await newApp();
    const started = process.hrtime.bigint();
    const report = await app.syncOnce();
    t.diagnostic(`AD full sync of ${BULK_USERS} bulk users + fixture: ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(2)} s (${report})`);

    const expected: Record<string, string> = {
      'jane@ad.example.com': 'jane@ad.example.com',
      'j.doe@ad.example.com': 'jane@ad.example.com',
      'mixed.case@ad.example.com': 'Mixed.Case@ad.example.com',
      'm.case@ad.example.com': 'Mixed.Case@ad.example.com',
      'mailonly@ad.example.com': 'mailonly@ad.example.com',
      'sales@ad.example.com': 'sales@ad.example.com',
      'vertrieb@ad.example.com': 'sales@ad.example.com',
      'partner@ad.example.com': 'partner@ad.example.com',
      [`bulk1@ad.example.com`]: 'bulk1@ad.example.com',
      [`bulk${BULK_USERS}@ad.example.com`]: `bulk${BULK_USERS}@ad.example.com`,
    };
    for (const [address, canonical] of Object.entries(expected)) {
      assert.deepEqual(await answer(app, address), { verdict: 'valid', source: 'snapshot', canonical }, address);
    }
    // Disabled account (both addresses), an X400 proxy, no such user: absent from the snapshot,
    // and the directory (which confirms every snapshot miss) agrees.
    for (const address of ['dan@ad.example.com', 'daniel@ad.example.com', 'noaddr@ad.example.com', `bulk${BULK_USERS + 1}@ad.example.com`]) {
      assert.deepEqual(await answer(app, address), { verdict: 'unknown', source: 'directory' }, address);
    }

    const { records } = await readSnapshot(config.sync.snapshotPath!, snapshotSource(config));
    const all = new Set(records.flatMap((r) => r.addresses));
    for (let k = 1; k <= BULK_USERS; k++) assert.ok(all.has(`bulk${k}@ad.example.com`), `bulk${k}`);
    assert.ok(all.has('partner@partner.example'), "the contact's external mail is listed too");
    assert.ok(![...all].some((a) => a.startsWith('dan@') || a.startsWith('daniel@') || a.includes('x400') || a.includes(';')), 'no disabled or non-SMTP address');
    assert.equal(records.filter((r) => /^CN=Dan Disabled,/i.test(r.dn)).length, 0);
  });

  test('a user disabled since the last full sync is absent after the next one', async () => {
    assert.equal((await answer(app, 'bulk7@ad.example.com')).verdict, 'valid');
    await dc.disableUser('bulk7');
    await app.syncOnce();
    assert.deepEqual(await answer(app, 'bulk7@ad.example.com'), { verdict: 'unknown', source: 'directory' });
    assert.equal((await answer(app, 'bulk8@ad.example.com')).verdict, 'valid');
    await app.close();
  });

  test('an incremental sync (whenChanged) brings a proxy address added since', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.servicePassword, metrics, logger: silentLogger() });
    const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined });
    closers.push(async () => {
      await sync.stop();
      await directory.close();
    });
    assert.equal(await sync.load(), true);
    assert.equal(sync.current!.get('mo@ad.example.com'), undefined);
    await dc.modify('dn: CN=Mail Only,CN=Users,DC=ad,DC=example,DC=com\nchangetype: modify\nadd: proxyAddresses\nproxyAddresses: SMTP:mailonly@ad.example.com\nproxyAddresses: smtp:mo@ad.example.com\n');
    const report = await sync.incremental();
    assert.equal(report.kind, 'incremental');
    // Everything seeded in the last minute counts as changed (the skew margin), so no upper bound here.
    assert.ok(report.changed >= 1, `the changed entry is listed (${report.changed})`);
    assert.equal(sync.current!.get('mo@ad.example.com'), 'mailonly@ad.example.com');
    assert.equal(sync.current!.get('mailonly@ad.example.com'), 'mailonly@ad.example.com');
    assert.equal(sync.current!.get('bulk9@ad.example.com'), 'bulk9@ad.example.com', 'unchanged entries stay');
  });
});
