/**
 * What rcptgate answers when it cannot know, against a real slapd: a reader that loses its read
 * rights (ACL change), a paged size limit that breaks full syncs while incremental ones succeed,
 * deletes / disables / renames, stale negatives with slapd stopped, and SIGHUP-style reloads
 * during an outage. The steps share one slapd and run in order.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { DISABLED_EXCLUDING_FILTER, startSlapd, type Slapd } from '../helpers/slapd.js';
import { until as waitUntil } from '../helpers/wait.js';

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => waitUntil(what, check, timeoutMs, 50);

const USERS = 200;

let ldap: Slapd;
let dir: string;
let passwordFile: string;
const apps: App[] = [];

async function configFile(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  const { sync, directory, cache, ...rest } = extra as { sync?: object; directory?: object; cache?: object };
  await writeFile(
    file,
    JSON.stringify({
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: {
        kind: 'ldap',
        canaries: ['user1@example.com'],
        ldap: { urls: [ldap.url], bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, baseDN: ldap.baseDN, filter: DISABLED_EXCLUDING_FILTER, timeout: '2s' },
        ...directory,
      },
      cache: { negativeTtl: '1s', positiveTtl: '1s', ...cache },
      sync: { enabled: false, ...sync },
      log: { level: 'silent' },
      ...rest,
    }),
  );
  return file;
}

async function newApp(file: string, start = true): Promise<App> {
  const app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
  apps.push(app);
  if (start) await app.start();
  return app;
}

async function closeApp(app: App): Promise<void> {
  await app.close();
  apps.splice(apps.indexOf(app), 1);
}

const ask = async (app: App, address: string) => {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return { verdict: r.verdict, source: r.source };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function user(uid: string, mail = `${uid}@example.com`, extra = ''): string {
  return `dn: uid=${uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${mail}\n${extra}\n`;
}

before(async () => {
  ldap = await startSlapd({ generatedUsers: USERS, revocableReader: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-unknowable-'));
  passwordFile = path.join(dir, 'bind-password');
  await writeFile(passwordFile, ldap.servicePassword, { mode: 0o600 });
});

after(async () => {
  for (const app of [...apps]) await app.close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('when rcptgate cannot know, against slapd', { concurrency: false }, () => {
  test('a reader that lost its read rights: full sync refused, every would-be unknown is tempfail, directory down', async () => {
    const snapshotPath = path.join(dir, 'acl.snapshot');
    const app = await newApp(await configFile('acl', { sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' } }));
    await until('the first full sync', () => app.health().snapshot.loaded);
    const entries = app.health().snapshot.entries;
    assert.ok(entries >= USERS);
    await until('the directory is up', () => app.health().directory.up);

    await ldap.revokeReader();
    // slapd now answers every search with success and no entries.
    assert.equal((await ask(app, 'nobody@example.com')).verdict, 'tempfail');
    assert.equal((await ask(app, 'user5@example.com')).verdict, 'valid', 'positive knowledge from the snapshot still holds');
    const health = app.health();
    assert.equal(health.directory.up, false);
    assert.equal(health.reasonCode, 'canary_missing');
    await assert.rejects(app.syncOnce(), /down from|canary/);
    assert.equal(app.health().snapshot.entries, entries, 'the old snapshot is kept');

    await ldap.restoreReader();
    await until('the canary is found again', async () => (await ask(app, 'nobody2@example.com')).verdict === 'unknown');
    assert.equal(app.health().directory.up, true);
    await closeApp(app);
  });

  test('a snapshot miss is confirmed live: a user added after the last sync is valid at once', async () => {
    const snapshotPath = path.join(dir, 'miss.snapshot');
    const app = await newApp(await configFile('miss', { sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' } }));
    await until('the first full sync', () => app.health().snapshot.loaded);
    await ldap.modify(user('newbie'));
    assert.deepEqual(await ask(app, 'newbie@example.com'), { verdict: 'valid', source: 'directory' });
    await closeApp(app);
  });

  test('stale negatives defer: an expired cached unknown and a snapshot miss after a restart, with slapd stopped', async () => {
    const snapshotPath = path.join(dir, 'stale.snapshot');
    const file = await configFile('stale', { sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' } });
    let app = await newApp(file);
    await until('the first full sync', () => app.health().snapshot.loaded);
    assert.equal((await ask(app, 'later@example.com')).verdict, 'unknown');
    await ldap.modify(user('later'));
    await sleep(1_100); // past cache.negativeTtl
    await ldap.stop();
    try {
      assert.equal((await ask(app, 'later@example.com')).verdict, 'tempfail');
      await closeApp(app);
      app = await newApp(file);
      assert.equal(app.health().snapshot.loaded, true);
      assert.equal((await ask(app, 'later@example.com')).verdict, 'tempfail', 'a snapshot miss with the directory down');
      assert.equal((await ask(app, 'user3@example.com')).verdict, 'valid');
    } finally {
      await ldap.start();
    }
    await closeApp(app);
  });

  test('while full syncs fail (paged size limit), incremental ones do not keep the snapshot fresh; deletes, disables and renames drop out at the first full sync that succeeds', async () => {
    const snapshotPath = path.join(dir, 'limits.snapshot');
    const app = await newApp(await configFile('limits', { sync: { enabled: true, snapshotPath, interval: '2s', incrementalInterval: '1s', maxAge: '4s' } }));
    await until('the first full sync', () => app.health().snapshot.loaded);
    await ldap.reconfigure({ servicePagedLimit: 50 });
    await ldap.modify(
      [
        `dn: uid=user7,ou=people,dc=example,dc=com\nchangetype: delete\n`,
        `dn: uid=user8,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n`,
        `dn: uid=user9,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=user9b\ndeleteoldrdn: 1\n`,
        `dn: uid=user9b,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: user9b@example.com\n`,
      ].join('\n'),
    );
    // Past sync.maxAge the snapshot is stale although incremental syncs keep succeeding.
    await until('the snapshot is past sync.maxAge', () => (app.health().snapshot.ageSeconds ?? 0) > 4, 15_000);
    for (const gone of ['user7', 'user8', 'user9']) assert.notEqual((await ask(app, `${gone}@example.com`)).verdict, 'valid', gone);
    assert.equal((await ask(app, 'user9b@example.com')).verdict, 'valid');

    await ldap.reconfigure({});
    await until('a full sync succeeds', () => (app.health().snapshot.ageSeconds ?? 99) < 3, 15_000);
    for (const gone of ['user7', 'user8', 'user9']) assert.notEqual((await ask(app, `${gone}@example.com`)).verdict, 'valid', gone);
    assert.deepEqual(await ask(app, 'user9b@example.com'), { verdict: 'valid', source: 'snapshot' });
    await closeApp(app);
  });

  test('a reload during an outage keeps readiness, directory state and cached answers; a directory change flushes them', async () => {
    const file = await configFile('reload', { cache: { positiveTtl: '1h' } });
    const app = await newApp(file);
    await until('ready', () => app.health().ready && app.health().directory.up);
    assert.equal((await ask(app, 'user2@example.com')).verdict, 'valid');
    await ldap.stop();
    try {
      assert.equal((await ask(app, 'user4@example.com')).verdict, 'tempfail');
      assert.equal(app.health().directory.up, false);
      assert.equal(await app.reload(file), true);
      const h = app.health();
      assert.equal(h.ready, true, 'readiness carries over');
      assert.equal(h.directory.up, false);
      assert.equal(h.reasonCode, 'directory_down');
      assert.deepEqual(await ask(app, 'user2@example.com'), { verdict: 'valid', source: 'cache' });

      await configFile('reload', { cache: { positiveTtl: '1h' }, directory: { canaries: [] } });
      assert.equal(await app.reload(file), true);
      assert.equal((await ask(app, 'user2@example.com')).verdict, 'tempfail', 'directory settings changed: cache flushed');
      assert.equal(app.health().ready, true);
    } finally {
      await ldap.start();
    }
    await closeApp(app);
  });

  test('a reload honours sync.*: turning sync.enabled off stops serving the snapshot', async () => {
    const snapshotPath = path.join(dir, 'reload-sync.snapshot');
    const file = await configFile('reload-sync', { sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' } });
    const app = await newApp(file);
    await until('the first full sync', () => app.health().snapshot.loaded);
    assert.equal((await ask(app, 'user6@example.com')).source, 'snapshot');
    await configFile('reload-sync');
    assert.equal(await app.reload(file), true);
    assert.equal(app.health().snapshot.loaded, false);
    assert.equal((await ask(app, 'user6@example.com')).source, 'directory');
    await closeApp(app);
  });
});
