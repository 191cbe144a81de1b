/**
 * Snapshot mode against a real slapd holding 100,000 users: full sync, answers from the
 * snapshot, a restart with the directory down (readiness + real `postmap -q` over socketmap),
 * incremental and full refreshes of adds / modifies / deletes, and a corrupt snapshot file.
 * The steps share one directory and one snapshot file, so they run in order.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { postmapQuery, requireTool } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until as waitUntil } from '../helpers/wait.js';

const USERS = 100_000;

/** Every log line of one app, parsed. */
class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown> & { msg: string; level: number }> = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l.trim()) this.lines.push(JSON.parse(l));
    done();
  }
}

let ldap: Slapd;
let dir: string;
let configFile: string;
let snapshotPath: string;
const apps: App[] = [];

async function newApp(): Promise<{ app: App; logs: LogSink }> {
  const logs = new LogSink();
  const app = await createApp({ loaded: loadConfig(configFile, {}), logger: createLogger('info', logs) });
  apps.push(app);
  return { app, logs };
}

async function closeApp(app: App): Promise<void> {
  await app.close();
  apps.splice(apps.indexOf(app), 1);
}

async function verdictOf(app: App, address: string): Promise<{ verdict: string; source: string; canonical?: string }> {
  const r = await app.validator.lookup(address, { frontend: 'http' });
  return { verdict: r.verdict, source: r.source, ...(r.canonical !== undefined ? { canonical: r.canonical } : {}) };
}

async function counter(app: App, name: string, labels: Record<string, string>): Promise<number> {
  const text = await app.metrics.registry.metrics();
  const sel = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const m = new RegExp(`^${name}\\{${sel}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const until = (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => waitUntil(what, check, timeoutMs);

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

before(async () => {
  requireTool('postmap');
  ldap = await startSlapd({ generatedUsers: USERS });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapshot-slapd-'));
  snapshotPath = path.join(dir, 'recipients.snapshot');
  const passwordFile = path.join(dir, 'bind-password');
  await writeFile(passwordFile, ldap.servicePassword, { mode: 0o600 });
  configFile = path.join(dir, 'rcptgate.yaml');
  await writeFile(
    configFile,
    JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com', 'example.org'],
      directory: {
        kind: 'ldap',
        ldap: { urls: [ldap.url], bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, baseDN: ldap.baseDN, timeout: '10s', pageSize: 1000 },
      },
      // Background syncs only where a step starts them; each step drives its own.
      sync: { enabled: true, snapshotPath, interval: '1h', incrementalInterval: '1h' },
      log: { level: 'info' },
    }),
  );
});

after(async () => {
  for (const app of [...apps]) await app.close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('snapshot mode against slapd with 100,000 users', { concurrency: false }, () => {
  let synced: App;

  test('a full sync lists every user and writes the snapshot file', async (t) => {
    const { app } = await newApp();
    synced = app;
    const rssBefore = process.memoryUsage().rss;
    const started = process.hrtime.bigint();
    const report = await app.syncOnce();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const mem = process.memoryUsage();
    t.diagnostic(`full sync of ${USERS} users: ${seconds.toFixed(2)} s; process RSS ${mb(mem.rss)} (+${mb(mem.rss - rssBefore)} during the sync), heap used ${mb(mem.heapUsed)}`);
    console.log(`[snapshot-slapd] full sync ${USERS} users: ${seconds.toFixed(2)} s, RSS ${mb(mem.rss)} (+${mb(mem.rss - rssBefore)}), heapUsed ${mb(mem.heapUsed)}; ${report}`);
    const entries = Number(/entries=(\d+)/.exec(report)?.[1]);
    const addresses = Number(/addresses=(\d+)/.exec(report)?.[1]);
    assert.ok(entries >= USERS, `at least the ${USERS} generated users: ${report}`);
    assert.ok(addresses >= USERS, report);
    const health = app.health();
    assert.equal(health.snapshot.loaded, true);
    assert.equal(health.snapshot.entries, addresses);
    const text = await readFile(snapshotPath, 'utf8');
    assert.equal(JSON.parse(text.split('\n', 2)[1]!).entries, entries);
  });

  test('every synced user is valid from the snapshot without directory requests; a miss is confirmed live once', async () => {
    const requestsBefore = await app_directory_requests(synced);
    const wrong: string[] = [];
    for (let k = 1; k <= USERS; k++) {
      const r = await verdictOf(synced, `user${k}@example.com`);
      if (r.verdict !== 'valid' || r.source !== 'snapshot' || r.canonical !== `user${k}@example.com`) wrong.push(`user${k}: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${USERS} users not answered valid from the snapshot`);
    // Normalization and sub-addresses work on snapshot answers as on live ones.
    assert.deepEqual(await verdictOf(synced, 'USER77@Example.COM'), { verdict: 'valid', source: 'snapshot', canonical: 'user77@example.com' });
    assert.deepEqual(await verdictOf(synced, 'user78+news@example.com'), { verdict: 'valid', source: 'snapshot', canonical: 'user78@example.com' });
    assert.deepEqual(await verdictOf(synced, 'ally@example.com'), { verdict: 'valid', source: 'snapshot', canonical: 'alice@example.com' });
    assert.deepEqual(await verdictOf(synced, 'dave@example.org'), { verdict: 'valid', source: 'snapshot', canonical: 'dave@example.org' });
    assert.equal((await verdictOf(synced, 'user1@elsewhere.example')).verdict, 'not_ours');
    assert.equal(await app_directory_requests(synced), requestsBefore, 'snapshot hits never ask the directory');
    // A miss may be an address added since the sync: the directory confirms it, once.
    const unknowns = [`user${USERS + 1}@example.com`, 'user0@example.com', 'nobody@example.com', 'user1@example.org', 'user1x@example.com'];
    for (const unknown of unknowns) assert.deepEqual(await verdictOf(synced, unknown), { verdict: 'unknown', source: 'directory' }, unknown);
    for (const unknown of unknowns) assert.deepEqual(await verdictOf(synced, unknown), { verdict: 'unknown', source: 'cache' }, unknown);
    // One request per address, and one per domain for @example.com and @example.org (a catch-all entry would answer them).
    assert.equal(await app_directory_requests(synced), requestsBefore + unknowns.length + 2);
    await closeApp(synced);
  });

  test('a new app with the directory down loads the snapshot, is ready, and Postfix gets OK, or TEMP for a snapshot miss, over socketmap', async () => {
    await ldap.stop();
    const { app, logs } = await newApp();
    await app.start();
    const http = app.addresses.http!;
    const socketmap = app.addresses.socketmap!;
    assert.ok(logs.lines.some((l) => l.msg === 'snapshot loaded'), 'the snapshot is loaded before the listeners open');

    const ready = await fetch(`http://127.0.0.1:${http.port}/readyz`);
    const body = (await ready.json()) as { ready: boolean; snapshot: { loaded: boolean; entries: number } };
    assert.equal(ready.status, 200, JSON.stringify(body));
    assert.equal(body.snapshot.loaded, true);
    assert.ok(body.snapshot.entries >= USERS);

    const map = `socketmap:inet:127.0.0.1:${socketmap.port}:recipients`;
    const found = await postmapQuery('user4242@example.com', map);
    assert.equal(found.code, 0, found.stderr);
    assert.deepEqual(found.lines, ['user4242@example.com']);
    const tagged = await postmapQuery('User99999+x@example.com', map);
    assert.deepEqual(tagged.lines, ['user99999@example.com'], tagged.stderr);
    // Negative knowledge is not served stale: the address may have been added since the sync.
    const missing = await postmapQuery(`user${USERS + 7}@example.com`, map);
    assert.deepEqual(missing.lines, []);
    assert.match(missing.stderr, /temporary error/, 'TEMP, not NOTFOUND, with the directory down');

    // The background full sync fails against the stopped server; the snapshot stays.
    await until('the failed full sync is counted', async () => (await counter(app, 'rcptgate_sync_failures_total', { kind: 'full' })) >= 1);
    assert.equal(app.health().snapshot.loaded, true);
    assert.equal((await postmapQuery('user1@example.com', map)).code, 0);
    await closeApp(app);
    await ldap.start();
  });

  test('adds and mail changes appear after the next incremental sync, deletions after the next full sync', async () => {
    // Incremental syncs every second. The snapshot on disk had a full sync minutes ago, so the
    // next full one waits for the rest of the hour: only incremental syncs run here.
    const loaded = loadConfig(configFile, {});
    const fast = { ...loaded, config: { ...loaded.config, listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null }, sync: { ...loaded.config.sync, incrementalInterval: '1s' } } };
    const logs = new LogSink();
    const app = await createApp({ loaded: fast, logger: createLogger('debug', logs) });
    apps.push(app);
    await app.start();
    await until('the catch-up incremental sync is done', async () => logs.lines.some((l) => l.msg === 'incremental sync done'), 60_000);
    assert.ok(!logs.lines.some((l) => l.msg === 'full sync done'), 'a restart does not re-list the whole directory');
    assert.deepEqual(await verdictOf(app, 'user20@example.com'), { verdict: 'valid', source: 'snapshot', canonical: 'user20@example.com' });

    await ldap.modify(
      [
        'dn: uid=newbie,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newbie\ncn: Newbie\nsn: Newbie\nmail: newbie@example.com\n',
        'dn: uid=user10,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: user10.renamed@example.com\n',
        'dn: uid=user20,ou=people,dc=example,dc=com\nchangetype: delete\n',
      ].join('\n'),
    );
    // Valid at once (a snapshot miss is confirmed live), then from the snapshot.
    assert.equal((await verdictOf(app, 'newbie@example.com')).verdict, 'valid');
    await until('the incremental sync brings the add and the modify', async () => {
      const [a, b] = await Promise.all([verdictOf(app, 'newbie@example.com'), verdictOf(app, 'user10.renamed@example.com')]);
      return a.source === 'snapshot' && b.source === 'snapshot';
    }, 90_000);
    assert.deepEqual(await verdictOf(app, 'newbie@example.com'), { verdict: 'valid', source: 'snapshot', canonical: 'newbie@example.com' });
    assert.deepEqual(await verdictOf(app, 'user10@example.com'), { verdict: 'unknown', source: 'directory' }, 'the old mail of a modified entry is gone');
    assert.equal((await verdictOf(app, 'user20@example.com')).verdict, 'valid', 'deletions wait for the full sync');

    await app.syncOnce();
    assert.deepEqual(await verdictOf(app, 'user20@example.com'), { verdict: 'unknown', source: 'directory' });
    assert.equal((await verdictOf(app, 'newbie@example.com')).verdict, 'valid');
    assert.equal((await verdictOf(app, 'user10.renamed@example.com')).verdict, 'valid');
    await closeApp(app);
  });

  test('a corrupt snapshot file is rejected with a log line and live lookups answer instead', async () => {
    const buf = await readFile(snapshotPath);
    const at = Math.floor(buf.length / 2);
    buf[at] = buf[at]! ^ 0x04;
    await writeFile(snapshotPath, buf);

    const { app, logs } = await newApp();
    await app.prepare();
    const rejected = logs.lines.find((l) => l.msg.startsWith('snapshot not loaded'));
    assert.ok(rejected, 'one log line says the snapshot was not loaded');
    assert.match(String((rejected.err as { message: string }).message), /RCPTGATE|checksum mismatch/);
    assert.equal(app.health().snapshot.loaded, false);

    assert.deepEqual(await verdictOf(app, 'user31337@example.com'), { verdict: 'valid', source: 'directory', canonical: 'user31337@example.com' });
    assert.deepEqual(await verdictOf(app, 'user20@example.com'), { verdict: 'unknown', source: 'directory' });
    // Without snapshot and directory, an uncached address is deferred, never refused.
    await ldap.stop();
    assert.equal((await verdictOf(app, 'user31338@example.com')).verdict, 'tempfail');
    await closeApp(app);
    await ldap.start();
  });
});

async function app_directory_requests(app: App): Promise<number> {
  const text = await app.metrics.registry.metrics();
  let sum = 0;
  for (const m of text.matchAll(/^rcptgate_directory_requests_total\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}
