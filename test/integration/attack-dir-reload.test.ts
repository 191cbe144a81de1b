/**
 * SIGHUP at the worst moment for an LDIF directory: the administrator rewrites the file in place
 * (`cat new.ldif > directory.ldif`, an editor without atomic saves), which truncates it before
 * writing, and the reload reads it in between. An empty directory would answer `unknown` for
 * every address of the served domains (reject-all); the reload must be refused and the running
 * directory kept.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { EXAMPLE_LDIF } from '../../src/directory/ldif.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd } from '../helpers/slapd.js';
import { startDelayProxy } from '../helpers/delay-proxy.js';
import { setTimeout as sleep } from 'node:timers/promises';

describe('a reload that reads an LDIF file caught mid-rewrite', () => {
  let dir: string;
  let app: App | undefined;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-reload-'));
  });
  after(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an LDIF file with no recipient is refused; the running directory keeps answering', async () => {
    const ldif = path.join(dir, 'directory.ldif');
    await copyFile(EXAMPLE_LDIF, ldif);
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: ldif } },
      log: { level: 'silent' },
    }));
    app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    await app.start();
    const ask = async (a: string) => (await app!.validator.lookup(a, { frontend: 'http' })).verdict;
    assert.equal(await ask('alice@example.com'), 'valid');

    await truncate(ldif, 0);
    assert.equal(await app.reload(file), false, 'the reload of an empty LDIF file is refused');
    assert.equal(await ask('alice@example.com'), 'valid', 'still answered from the running directory');

    // Caught a moment later: only the version line and comments written so far.
    await writeFile(ldif, 'version: 1\n# recipients follow\n');
    assert.equal(await app.reload(file), false, 'a file with no recipient entry yet is refused too');
    assert.equal(await ask('alice@example.com'), 'valid');

    await copyFile(EXAMPLE_LDIF, ldif);
    assert.equal(await app.reload(file), true, 'the rewritten file reloads');
    assert.equal(await ask('alice@example.com'), 'valid');
    assert.equal(await ask('nobody@example.com'), 'unknown');
  });

  test('a reload while a full sync runs lets that sync finish on the directory it started with', async () => {
    const slapd = await startSlapd({ generatedUsers: 300 });
    // Far enough away that the paged listing takes a few seconds.
    const proxy = await startDelayProxy(slapd.port, 40);
    let syncing: App | undefined;
    try {
      const file = path.join(dir, 'snapshot.yaml');
      const passwordFile = path.join(dir, 'bind-password');
      await writeFile(passwordFile, slapd.servicePassword, { mode: 0o600 });
      await writeFile(file, JSON.stringify({
        listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, bindPasswordFile: passwordFile, pageSize: 10, timeout: '5s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'recipients.snapshot'), interval: '1h', incrementalInterval: '1h' },
        log: { level: 'silent' },
      }));
      // The replaced directory gets 200 ms instead of 30 s: the sync outlasts it either way.
      syncing = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger(), retireAfterMs: 200 });
      await syncing.start();
      await sleep(300);
      assert.equal(await syncing.reload(file), true);
      const failures = async () => (await syncing!.metrics.syncFailures.get()).values.reduce((n, v) => n + v.value, 0);
      const deadline = Date.now() + 30_000;
      while ((syncing.health().snapshot?.entries ?? 0) === 0 && (await failures()) === 0 && Date.now() < deadline) await sleep(100);
      assert.equal(await failures(), 0, 'the full sync failed: its directory was closed under it');
      assert.ok((syncing.health().snapshot?.entries ?? 0) >= 300, JSON.stringify(syncing.health().snapshot));
    } finally {
      await syncing?.close();
      await proxy.close();
      await slapd.close();
    }
  });

  test('a reload to a config file cut before its directory section keeps the running directory', async () => {
    const slapd = await startSlapd();
    let running: App | undefined;
    try {
      const file = path.join(dir, 'cut.yaml');
      const passwordFile = path.join(dir, 'cut-password');
      await writeFile(passwordFile, slapd.servicePassword, { mode: 0o600 });
      const head = [
        'listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null }',
        'log: { level: silent }',
        'domains: [example.com]',
      ];
      const directory = [
        'directory:',
        '  kind: ldap',
        '  ldap:',
        `    urls: ["${slapd.url}"]`,
        `    baseDN: "${slapd.baseDN}"`,
        `    bindDN: "${slapd.serviceDN}"`,
        `    bindPasswordFile: "${passwordFile}"`,
      ];
      await writeFile(file, [...head, ...directory, ''].join('\n'));
      running = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
      await running.start();
      const ask = async (a: string) => (await running!.validator.lookup(a, { frontend: 'http' })).verdict;
      // user3@ is in the directory, not in the bundled example.
      assert.equal(await ask('user3@example.com'), 'valid');

      await writeFile(file, [...head, ''].join('\n'));
      assert.equal(await running.reload(file), false, 'a reload onto the bundled example directory is refused');
      assert.equal(await ask('user3@example.com'), 'valid', 'still answered by the directory');
    } finally {
      await running?.close();
      await slapd.close();
    }
  });

  test('a reload whose directory finds none of the recently valid addresses is refused', async () => {
    // Anonymous may not read ou=people: searches without the bind account succeed with no entries.
    const slapd = await startSlapd({ revocableReader: true });
    let running: App | undefined;
    try {
      const file = path.join(dir, 'anonymous.yaml');
      const passwordFile = path.join(dir, 'anonymous-password');
      await writeFile(passwordFile, slapd.servicePassword, { mode: 0o600 });
      const lines = [
        'listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null }',
        'log: { level: silent }',
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        '  ldap:',
        `    urls: ["${slapd.url}"]`,
        `    baseDN: "${slapd.baseDN}"`,
        `    bindDN: "${slapd.serviceDN}"`,
        `    bindPasswordFile: "${passwordFile}"`,
      ];
      await writeFile(file, [...lines, ''].join('\n'));
      running = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
      await running.start();
      const ask = async (a: string) => (await running!.validator.lookup(a, { frontend: 'http' })).verdict;
      // A password file rewritten with the wrong secret: the server refuses the bind and every
      // lookup would defer. A definite refusal, not an outage: the reload is refused, also
      // before anything was found valid.
      const wrongPassword = path.join(dir, 'anonymous-wrong-password');
      await writeFile(wrongPassword, 'not-the-secret', { mode: 0o600 });
      const wrong = [...lines.slice(0, 9), `    bindPasswordFile: "${wrongPassword}"`, ''].join('\n');
      await writeFile(file, wrong);
      assert.equal(await running.reload(file), false, 'a reload whose bind account is refused is refused (empty cache)');
      await writeFile(file, [...lines, ''].join('\n'));
      for (const a of ['user1@example.com', 'user2@example.com', 'bob@example.com']) assert.equal(await ask(a), 'valid', a);
      assert.equal(await ask('nobody@example.com'), 'unknown');

      // Cut after the base DN: no bind account.
      await writeFile(file, [...lines.slice(0, 8), ''].join('\n'));
      assert.equal(await running.reload(file), false, 'a reload whose directory sees none of them is refused');
      assert.equal(await ask('user4@example.com'), 'valid', 'an address not cached is still found by the running directory');

      await writeFile(file, wrong);
      assert.equal(await running.reload(file), false, 'a reload whose bind account is refused is refused');
      assert.equal(await ask('user3@example.com'), 'valid', 'still answered by the running directory');

      // A reload that still finds them goes through.
      await writeFile(file, [...lines, '    timeout: 2s', ''].join('\n'));
      assert.equal(await running.reload(file), true);
      assert.equal(await ask('user5@example.com'), 'valid');
    } finally {
      await running?.close();
      await slapd.close();
    }
  });

  test('an LDIF file caught half written is refused when it lacks the recently valid addresses', async () => {
    const ldif = path.join(dir, 'half.ldif');
    await copyFile(EXAMPLE_LDIF, ldif);
    const file = path.join(dir, 'half.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com', 'example.org'],
      directory: { kind: 'ldif', ldif: { path: ldif } },
      log: { level: 'silent' },
    }));
    let running: App | undefined;
    try {
      running = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
      await running.start();
      const ask = async (a: string) => (await running!.validator.lookup(a, { frontend: 'http' })).verdict;
      for (const a of ['staff@example.com', 'carol@example.org', 'dave@example.org']) assert.equal(await ask(a), 'valid', a);
      // The first entries only: the write had not got further.
      const text = await readFile(EXAMPLE_LDIF, 'utf8');
      await writeFile(ldif, text.slice(0, text.indexOf('dn: uid=carol.mixed')));
      assert.equal(await running.reload(file), false);
      assert.equal(await ask('first-last@example.com'), 'valid', 'the running directory still answers');
    } finally {
      await running?.close();
    }
  });
});

