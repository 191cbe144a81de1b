/**
 * The wall clock steps while a snapshot is held. sync.maxAge counts from the last successful full
 * sync in real time: a full sync run while the clock was an hour ahead (a wrong RTC at boot, then
 * NTP) kept the snapshot "fresh" for sync.maxAge plus that hour, so with the directory down a user
 * deleted since stayed `valid` from it long after sync.maxAge, and its age read 0 (no
 * RcptgateSnapshotStale). A step forward made a snapshot synced a moment ago look too old to use.
 * We cannot step the shared machine's clock in a test, so Date.now is mocked to the stepped wall
 * clock (the only fake); slapd, the syncs and the lookups are real.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const HOUR = 3_600_000;

describe('a snapshot held while the wall clock steps', { concurrency: false }, () => {
  let ldap: Slapd;
  let dir: string;
  let app: App | undefined;
  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8-clock-'));
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    mock.restoreAll();
  });
  after(async () => {
    await ldap?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An app in snapshot mode whose wall clock reads Date.now() + step(); its first full sync done. */
  async function snapshotApp(name: string, step: () => number, interval: string, maxAge: string): Promise<App> {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(
      file,
      JSON.stringify({
        listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com', 'example.org'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, `${name}.snapshot`), interval, incrementalInterval: '1h', maxAge },
        log: { level: 'silent' },
      }),
    );
    // Modules keep a reference to Date.now: mock it before the app is built.
    const wall = Date.now.bind(Date);
    mock.method(Date, 'now', () => wall() + step());
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    const started = await createApp({ loaded: loadConfig(file, env), logger: silentLogger(), env });
    app = started;
    await started.start();
    const deadline = performance.now() + 10_000;
    while (!started.health().snapshot.loaded) {
      if (performance.now() > deadline) throw new Error('no full sync within 10 s');
      await sleep(50);
    }
    return started;
  }

  const verdict = async (a: App, address: string) => {
    const r = await a.validator.lookup(address, { frontend: 'http' });
    return `${r.verdict}/${r.source}`;
  };

  test('stepped back after the full sync: the snapshot is not used past sync.maxAge of real time', async () => {
    let step = HOUR;
    // A full sync every second; from the outage on, each fails.
    const a = await snapshotApp('back', () => step, '1s', '2s');
    assert.equal(await verdict(a, 'bob@example.com'), 'valid/snapshot');
    await ldap.stop();
    step = 0;
    try {
      await sleep(2_500);
      assert.ok((a.health().snapshot.ageSeconds ?? 0) >= 2, `snapshot age reads ${a.health().snapshot.ageSeconds}s 2.5 s after the last full sync`);
      // Deleted or disabled users stay valid for as long as the snapshot is used: sync.maxAge bounds that.
      assert.equal(await verdict(a, 'bob@example.com'), 'tempfail/directory', 'a snapshot past sync.maxAge of real time still answered');
    } finally {
      await ldap.start();
    }
  });

  test('stepped forward after the full sync: a snapshot synced a moment ago is still used', async () => {
    let step = 0;
    const a = await snapshotApp('forward', () => step, '1h', '61m');
    step = 2 * HOUR;
    await ldap.stop();
    try {
      assert.equal(await verdict(a, 'dave@example.org'), 'valid/snapshot', 'directory down: the fresh snapshot answers');
      assert.ok((a.health().snapshot.ageSeconds ?? 99) < 60, `snapshot age reads ${a.health().snapshot.ageSeconds}s`);
    } finally {
      await ldap.start();
    }
  });
});
