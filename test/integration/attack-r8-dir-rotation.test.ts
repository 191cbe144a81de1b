/**
 * A directory admin rotates the service account's password (or moves the directory to new
 * servers), updates rcptgate's bind password file and sends SIGHUP, as the runbook says. The
 * lookups rebuild their connections with the new password; the change-driven removals of the
 * snapshot sync (sync.detectRemovals) must follow too. They kept binding with the password read
 * at start, so every incremental sync failed from then on ("Invalid credentials") and a user
 * disabled since stayed `valid` from the snapshot until the next full sync (or for ever, when
 * full syncs fail as well), with a warning every incremental interval. Real slapd.
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
import { until } from '../helpers/wait.js';

let ldap: Slapd;
let oldServer: Slapd;
let newServer: Slapd;
let dir: string;
const apps: App[] = [];

before(async () => {
  [ldap, oldServer, newServer] = await Promise.all([startSlapd(), startSlapd(), startSlapd()]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8-rotation-'));
});

after(async () => {
  for (const app of apps) await app.close().catch(() => undefined);
  await ldap?.close();
  await oldServer?.close();
  await newServer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function writeConfig(file: string, url: string, passwordFile: string): Promise<void> {
  await writeFile(
    file,
    JSON.stringify({
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com', 'example.org'],
      directory: { kind: 'ldap', ldap: { urls: [url], bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, baseDN: ldap.baseDN, filter: DISABLED_EXCLUDING_FILTER, timeout: '3s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, `${path.basename(file)}.snapshot`), interval: '1h', incrementalInterval: '1s', detectRemovals: true },
      log: { level: 'silent' },
    }),
  );
}

const verdict = async (app: App, address: string) => {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return `${r.verdict}/${r.source}`;
};

async function incrementalFailures(app: App): Promise<number> {
  const m = await app.metrics.registry.getSingleMetric('rcptgate_sync_failures_total')?.get();
  return m?.values.find((v) => v.labels.kind === 'incremental')?.value ?? 0;
}

describe('change-driven removals after a SIGHUP that changed how the directory is reached', { concurrency: false }, () => {
  test('a rotated bind password: the next incremental sync drops a user disabled since, and none fails', async () => {
    const passwordFile = path.join(dir, 'password');
    await writeFile(passwordFile, ldap.servicePassword, { mode: 0o600 });
    const file = path.join(dir, 'rotate.yaml');
    await writeConfig(file, ldap.url, passwordFile);
    const app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    apps.push(app);
    await app.start();
    await until('the first full sync', () => app.health().snapshot.loaded);
    assert.equal(await verdict(app, 'bob@example.com'), 'valid/snapshot');

    // The admin rotates the password in the directory and in the file, then sends SIGHUP.
    await ldap.modify(`dn: ${ldap.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: rotated-secret\n`);
    await writeFile(passwordFile, 'rotated-secret');
    assert.equal(await app.reload(file), true);
    const failuresBefore = await incrementalFailures(app);

    await ldap.modify('dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n');
    await until('bob, disabled, is out of the snapshot', async () => (await verdict(app, 'bob@example.com')) === 'unknown/directory', 8_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; incremental sync failures since the reload: ${(await incrementalFailures(app)) - failuresBefore}`);
    });
    assert.equal(await verdict(app, 'alice@example.com'), 'valid/snapshot');
    assert.equal((await incrementalFailures(app)) - failuresBefore, 0, 'no incremental sync failed after the reload');
  });

  test('directory.ldap.urls moved to another server: removals are read from the new one', async () => {
    const passwordFile = path.join(dir, 'password-move');
    await writeFile(passwordFile, oldServer.servicePassword, { mode: 0o600 });
    const file = path.join(dir, 'move.yaml');
    await writeConfig(file, oldServer.url, passwordFile);
    const app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    apps.push(app);
    await app.start();
    await until('the first full sync', () => app.health().snapshot.loaded);
    assert.equal(await verdict(app, 'dave@example.org'), 'valid/snapshot');

    // The directory moves to a new server (same data) and the old one is retired.
    await writeConfig(file, newServer.url, passwordFile);
    assert.equal(await app.reload(file), true);
    await oldServer.stop();
    const failuresBefore = await incrementalFailures(app);

    await newServer.modify('dn: uid=dave,ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n');
    await until('dave, disabled on the new server, is out of the snapshot', async () => (await verdict(app, 'dave@example.org')) === 'unknown/directory', 8_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; incremental sync failures since the reload: ${(await incrementalFailures(app)) - failuresBefore}`);
    });
    assert.equal((await incrementalFailures(app)) - failuresBefore, 0, 'no incremental sync failed after the reload');
  });
});
