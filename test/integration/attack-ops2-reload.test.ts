/**
 * SIGHUP storms against the real process and a real slapd: a config reloader or a careless loop
 * sending a hundred SIGHUPs while mail flows. Every reload built a new LDAP connection pool even
 * when the directory settings had not changed, and kept the replaced one open for 30 s for work
 * begun on it: 100 reloads took rcptgate from 3 to 215 connections to slapd (each one bound).
 * And reloads ran side by side: two SIGHUPs after a change of `sync.*` each replaced the syncer,
 * and both started the second one, so every sync ran twice from then on.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
const serves: ServeProcess[] = [];
const apps: App[] = [];

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-reload-'));
});
after(async () => {
  for (const s of serves) await s.kill();
  for (const a of apps) await a.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Established TCP connections to slapd (only the rcptgate under test connects to it). */
function connectionsToSlapd(): number {
  const { ss } = requireTools('ss');
  return execFileSync(ss!, ['-tnH', 'state', 'established', `( dport = :${ldap.port} )`]).toString().split('\n').filter((l) => l.trim() !== '').length;
}

describe('a storm of SIGHUPs while lookups run', () => {
  test('reloads of an unchanged directory keep its connections instead of opening a pool per reload', async () => {
    const passwordFile = path.join(dir, 'bind-password');
    await writeFile(passwordFile, ldap.servicePassword);
    const configFile = path.join(dir, 'rcptgate.yaml');
    await writeFile(
      configFile,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, timeout: '2s', poolSize: 2 } },
        log: { level: 'info' },
      }),
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const serve = startServe(['--config', configFile], env);
    serves.push(serve);
    const port = await listenerPort(serve, 'http');
    const verdict = async (address: string) => ((await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
    assert.equal(await verdict('alice@example.com'), 'valid');
    const reloads = 40;
    for (let i = 0; i < reloads; i++) {
      serve.child.kill('SIGHUP');
      await sleep(30);
      // A lookup the cache cannot answer, so the directory of the moment is asked.
      assert.equal(await verdict(`nobody${i}@example.com`), 'unknown');
    }
    // Signals sent close together may arrive as one: wait until the reloads have settled.
    let done = 0;
    for (let seen = -1; seen !== done; await sleep(500)) {
      seen = done;
      done = serve.logs.filter((l) => /configuration reloaded/.test(String(l.msg))).length;
    }
    assert.ok(done >= reloads / 2, `only ${done} reloads logged`);
    assert.equal(await verdict('alice@example.com'), 'valid');
    const open = connectionsToSlapd();
    assert.ok(open <= 2 + 1, `${open} connections to slapd after ${done} reloads of an unchanged config (poolSize 2)`);
  });
});

describe('SIGHUPs that arrive while a reload runs', () => {
  test('after a change of sync.* two reloads in a row leave one syncer, not two running every sync', async () => {
    const passwordFile = path.join(dir, 'bind-password-2');
    await writeFile(passwordFile, ldap.servicePassword);
    const configFile = path.join(dir, 'sync.yaml');
    const text = (interval: string) =>
      JSON.stringify({
        listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, timeout: '2s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval, incrementalInterval: '1s', maxAge: '2h' },
        log: { level: 'debug' },
      });
    await writeFile(configFile, text('1h'));
    const lines: Array<{ msg?: string }> = [];
    const logger = createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s) as { msg?: string }) } as never);
    const app = await createApp({ loaded: loadConfig(configFile, {}), logger, retireAfterMs: 100 });
    apps.push(app);
    await app.start();
    while (!lines.some((l) => l.msg === 'full sync done')) await sleep(50);
    await writeFile(configFile, text('50m'));
    // What two SIGHUPs do: main.ts calls reload() on each, without waiting for the first.
    const results = await Promise.all([app.reload(), app.reload()]);
    assert.deepEqual(results, [true, true]);
    await sleep(500);
    const from = lines.length;
    await sleep(6_000);
    const syncs = lines.slice(from).filter((l) => /^(incremental|full) sync done$/.test(String(l.msg))).length;
    // One syncer: one incremental sync a second at most (fewer on a loaded machine).
    assert.ok(syncs >= 1 && syncs <= 8, `${syncs} syncs in 6 s with sync.incrementalInterval 1s`);
  });
});

describe('a reload while the first full sync runs', () => {
  test('the snapshot that sync publishes reaches the new configuration\'s engine', async () => {
    const [source, replica] = await Promise.all([startSlapd({ generatedUsers: 5_000 }), startSlapd()]);
    try {
      const passwordFile = path.join(dir, 'bind-password-3');
      await writeFile(passwordFile, source.servicePassword);
      await writeFile(path.join(dir, 'replica-password'), replica.servicePassword);
      const configFile = path.join(dir, 'first-sync.yaml');
      const text = (url: string) =>
        JSON.stringify({
          listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: [url], baseDN: source.baseDN, bindDN: source.serviceDN, bindPasswordFile: passwordFile, timeout: '3s' } },
          sync: { enabled: true, snapshotPath: path.join(dir, 'first-sync-snapshot'), maxAge: '2h' },
          log: { level: 'silent' },
        });
      await writeFile(configFile, text(source.url));
      const app = await createApp({ loaded: loadConfig(configFile, {}), logger: createLogger('silent'), retireAfterMs: 100 });
      apps.push(app);
      // The new directory hangs: the reload's check of it waits out its timeout, and the first
      // full sync, still on the directory it started with, completes and publishes meanwhile.
      await replica.pause();
      await app.start();
      await writeFile(configFile, text(replica.url));
      assert.equal(await app.reload(), true);
      assert.ok(app.health().snapshot.loaded, 'the first full sync did not complete during the reload');
      const r = await app.validator.lookup('user1@example.com', { frontend: 'http' });
      assert.equal(`${r.verdict}/${r.source}`, 'valid/snapshot', 'the engine of the new config has no snapshot while its directory is down');
    } finally {
      replica.resume();
      await Promise.all([source.close(), replica.close()]);
    }
  });
});
