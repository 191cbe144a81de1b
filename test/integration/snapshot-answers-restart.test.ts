/**
 * cache.persistPath against a real slapd: answers confirmed before a restart are served after
 * it while slapd is down (fresh within their TTL, then stale), an address never confirmed is a
 * tempfail, and a "no such entry" answer is not carried over: it is a tempfail too.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
let configFile: string;
const apps: App[] = [];

async function started(): Promise<App> {
  const app = await createApp({ loaded: loadConfig(configFile, {}), logger: silentLogger() });
  apps.push(app);
  await app.start();
  return app;
}

async function stopped(app: App): Promise<void> {
  await app.close();
  apps.splice(apps.indexOf(app), 1);
}

const answer = async (app: App, address: string) => {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return `${r.verdict}/${r.source}`;
};

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-answers-restart-'));
  const passwordFile = path.join(dir, 'bind-password');
  await writeFile(passwordFile, ldap.servicePassword, { mode: 0o600 });
  configFile = path.join(dir, 'rcptgate.yaml');
  await writeFile(
    configFile,
    JSON.stringify({
      // No listener at all: the default metrics port may be taken by another process.
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com', 'example.org'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, baseDN: ldap.baseDN, timeout: '2s' } },
      cache: { persistPath: path.join(dir, 'answers'), positiveTtl: '3s', negativeTtl: '1h', staleIfError: '1h' },
      log: { level: 'silent' },
    }),
  );
});

after(async () => {
  for (const app of [...apps]) await app.close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cached answers across a restart with the directory down (no snapshot)', { concurrency: false }, () => {
  test('without cache.persistPath content a restart forgets everything: every lookup is a tempfail', async () => {
    await ldap.stop();
    try {
      const app = await started();
      assert.equal(await answer(app, 'alice@example.com'), 'tempfail/directory');
      await stopped(app);
    } finally {
      await ldap.start();
    }
  });

  test('answers confirmed before the restart are served after it, fresh and then stale', async () => {
    const first = await started();
    assert.equal(await answer(first, 'alice@example.com'), 'valid/directory');
    assert.equal(await answer(first, 'Carol.Mixed@example.com'), 'valid/directory');
    assert.equal(await answer(first, 'nobody@example.com'), 'unknown/directory');
    await stopped(first);

    await ldap.stop();
    const second = await started();
    assert.equal(await answer(second, 'alice@example.com'), 'valid/cache');
    const carol = await second.validator.lookup('carol.mixed@example.com', { frontend: 'http' });
    assert.equal(carol.canonical, 'Carol.Mixed@example.com');
    // A negative answer is not carried over, and a never-seen address cannot be decided.
    assert.equal(await answer(second, 'nobody@example.com'), 'tempfail/directory');
    assert.equal(await answer(second, 'bob@example.com'), 'tempfail/directory');
    // Past positiveTtl (3 s) the directory is still down: the positive answer is served stale.
    await new Promise((r) => setTimeout(r, 3_500));
    assert.equal(await answer(second, 'alice@example.com'), 'valid/stale');
    await stopped(second);
    await ldap.start();
  });
});
