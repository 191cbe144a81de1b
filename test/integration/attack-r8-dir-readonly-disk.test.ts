/**
 * The snapshot directory stops taking writes while the service runs (a volume remounted
 * read-only after an I/O error, a full disk, an immutable directory). Full syncs still list the
 * directory completely; only the file cannot be replaced. They were thrown away: the snapshot in
 * memory aged past sync.maxAge although every sync had succeeded, and the next directory outage
 * deferred every recipient instead of answering from the snapshot. A user created meanwhile was
 * never in it. Real slapd; the directory is made immutable with chattr +i (as root, which no
 * permission bit stops) or read-only (as anyone else): a real filesystem refusal.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { findTool, startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

let ldap: Slapd;
let dir: string;
let snapDir: string;
const apps: App[] = [];
const chattr = findTool('chattr');

const root = process.getuid?.() === 0;
// Root writes through permission bits: it needs the immutable attribute; anyone else, a read-only mode.
const immutable = (on: boolean) => (root ? execFileSync(chattr!, [on ? '+i' : '-i', snapDir]) : chmodSync(snapDir, on ? 0o555 : 0o755));

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8-readonly-'));
  snapDir = path.join(dir, 'snapshots');
  await mkdir(snapDir);
});

after(async () => {
  if ((chattr || !root) && snapDir) immutable(false);
  for (const app of apps) await app.close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const verdict = async (app: App, address: string) => {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return `${r.verdict}/${r.source}`;
};

describe('a snapshot directory that stops taking writes', () => {
  before(() => {
    // A missing tool fails the test, naming it (npm test installs e2fsprogs).
    if (root && chattr === null) throw new Error('chattr not found: install e2fsprogs');
  });

  test('full syncs still refresh the snapshot in memory: an outage after sync.maxAge answers from it', async () => {
    const snapshotPath = path.join(snapDir, 'recipients.snapshot');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(
      file,
      JSON.stringify({
        listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com', 'example.org'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], bindDN: ldap.serviceDN, baseDN: ldap.baseDN, timeout: '2s' } },
        // No incremental syncs (interval not shorter than the full one): only full syncs refresh.
        sync: { enabled: true, snapshotPath, interval: '1s', incrementalInterval: '1s', maxAge: '3s' },
        log: { level: 'silent' },
      }),
    );
    const app = await createApp({ loaded: loadConfig(file, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }), logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword } });
    apps.push(app);
    await app.start();
    await until('the first full sync wrote the file', async () => app.health().snapshot.loaded && (await stat(snapshotPath).catch(() => null)) !== null);
    const written = (await stat(snapshotPath)).mtimeMs;

    immutable(true);
    await ldap.modify('dn: uid=newbie,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: newbie\ncn: newbie\nsn: newbie\nmail: newbie@example.com\n');
    // Well past sync.maxAge, with a full sync every second that lists everything but cannot write.
    await new Promise((r) => setTimeout(r, 4_500));
    assert.equal((await stat(snapshotPath)).mtimeMs, written, 'the file could not be replaced');
    assert.ok((app.health().snapshot.ageSeconds ?? 99) <= 2, `snapshot age ${app.health().snapshot.ageSeconds}s: the syncs that listed everything refreshed it`);

    await ldap.stop();
    try {
      assert.equal(await verdict(app, 'bob@example.com'), 'valid/snapshot', 'directory down: the snapshot still answers');
      assert.equal(await verdict(app, 'newbie@example.com'), 'valid/snapshot', 'a user created while the disk refused writes is in it');
      assert.equal(await verdict(app, 'nobody@example.com'), 'tempfail/directory');
    } finally {
      await ldap.start();
    }

    // Once the directory takes writes again, the next full sync writes the file.
    immutable(false);
    await until('the file is written again', async () => (await stat(snapshotPath)).mtimeMs > written, 10_000);
  });
});
