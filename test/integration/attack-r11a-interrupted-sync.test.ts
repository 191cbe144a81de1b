/**
 * Syncs cut short, against a real slapd: the server restarted in the middle of a paged full
 * listing (its paging cookie gone with it), and the change feed's connection cut by the network
 * in the middle of its re-reads. A cut sync must fail as a whole (the snapshot served before
 * stays, nothing half-listed replaces it) and the next one must catch up on everything the cut
 * one missed: its window does not move on.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { Directory, DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startCutProxy, type CutProxy } from '../helpers/cut-proxy.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { DISABLED_EXCLUDING_FILTER, startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 3000;
let ldap: Slapd;
let proxy: CutProxy;
let silent: FaultProxy;
let dir: string;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  ldap = await startSlapd({ generatedUsers: USERS });
  proxy = await startCutProxy(ldap.port);
  silent = await startFaultProxy(ldap.port);
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-interrupted-sync-'));
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await proxy?.close();
  await silent?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configFor(name: string, url: string, timeout = '10s'): Config {
  return validateConfig({
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, filter: DISABLED_EXCLUDING_FILTER, timeout, pageSize: 100 } },
    sync: { enabled: true, snapshotPath: path.join(dir, name), interval: '1h', incrementalInterval: '1h', detectRemovals: true, maxShrink: 0.9 },
    log: { level: 'silent' },
  });
}

/** The real directory, with a hook run once after `at` records of a full listing. */
function interrupting(real: Directory, at: number, hook: () => Promise<void>): Directory & { armed: boolean } {
  const wrapped = Object.create(real) as Directory & { armed: boolean };
  wrapped.armed = false;
  wrapped.listAll = async function* (options) {
    let n = 0;
    for await (const r of real.listAll(options) as AsyncIterable<DirectoryRecord>) {
      yield r;
      if (wrapped.armed && !options?.changedSince && ++n === at) {
        wrapped.armed = false;
        await hook();
      }
    }
  };
  return wrapped;
}

function syncer(config: Config, directory: Directory): SnapshotSync {
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: () => undefined, changes });
  closers.push(() => sync.stop());
  return sync;
}

describe('syncs cut short', { concurrency: false }, () => {
  test('slapd restarted in the middle of a paged full listing: the sync fails, the old snapshot stays, the next one is whole', async () => {
    const config = configFor('restart', ldap.url);
    const real = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    closers.push(() => real.close());
    const directory = interrupting(real, 1000, async () => {
      await ldap.kill();
      await ldap.start();
    });
    const sync = syncer(config, directory);
    await sync.full();
    const before = sync.current!;
    const total = before.entries;
    assert.ok(total >= USERS, `${total} entries listed`);
    await ldap.modify(`dn: uid=user7,ou=people,dc=example,dc=com\nchangetype: modify\nadd: mail\nmail: seven@example.com\n`);
    directory.armed = true;
    await assert.rejects(sync.full(), 'the listing cut by the restart fails the sync');
    assert.equal(directory.armed, false, 'the restart happened mid-listing');
    assert.equal(sync.current, before, 'the snapshot served before stays');
    assert.equal(sync.current!.entries, total);
    assert.equal(sync.current!.get('user2999@example.com'), 'user2999@example.com', 'entries past the cut are still served');
    await sync.incremental();
    assert.equal(sync.current!.get('seven@example.com'), 'user7@example.com', 'the change the cut sync missed');
    const report = await sync.full();
    assert.equal(report.entries, total);
  });

  test("the change feed's connection cut mid re-reads: the sync fails and the next one drops the rest", async () => {
    const config = configFor('cut', proxy.url);
    const real = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    closers.push(() => real.close());
    const sync = syncer(config, real);
    await sync.full();
    assert.ok(sync.current!.entries >= USERS);
    // 300 leavers disabled at once: each is re-read on its own before it is dropped.
    const leavers = Array.from({ length: 300 }, (_, i) => i + 1);
    await ldap.modify(leavers.map((i) => `dn: uid=user${i},ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n`).join('\n'));
    // Cut every connection carrying searches once the re-reads are under way.
    const cutter = setInterval(() => {
      for (const c of proxy.connections) if (!c.closed && c.searches > 50) c.cut();
    }, 1);
    try {
      await assert.rejects(sync.incremental(), 'a sync whose connection was cut fails');
    } finally {
      clearInterval(cutter);
    }
    const left = leavers.filter((i) => sync.current!.get(`user${i}@example.com`) !== undefined).length;
    assert.ok(left > 0, `the cut came before every leaver was dropped (${left} left)`);
    await sync.incremental();
    const still = leavers.filter((i) => sync.current!.get(`user${i}@example.com`) !== undefined);
    assert.deepEqual(still, [], 'the next incremental sync dropped the rest');
    assert.equal(sync.current!.get('user301@example.com'), 'user301@example.com');
  });

  test("the change feed's connection silently dropped by the network mid re-reads: the sync fails within its timeout, the next one drops the rest", async () => {
    const config = configFor('blackhole', silent.url, '2s');
    const real = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    closers.push(() => real.close());
    const sync = syncer(config, real);
    await sync.full();
    const leavers = Array.from({ length: 300 }, (_, i) => 1001 + i);
    await ldap.modify(leavers.map((i) => `dn: uid=user${i},ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n`).join('\n'));
    // A connection that has carried the changed entries' DNs and some re-reads goes silent: no FIN, no RST.
    const seen = new Map<number, number>();
    silent.onServerMessage = (conn) => {
      const n = (seen.get(conn.id) ?? 0) + 1;
      seen.set(conn.id, n);
      if (n === 400) conn.blackhole();
    };
    const t0 = Date.now();
    await assert.rejects(sync.incremental(), 'the silent connection fails the sync');
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(seconds < 60, `the sync gave up after ${seconds} s, not never`);
    silent.onServerMessage = null;
    const left = leavers.filter((i) => sync.current!.get(`user${i}@example.com`) !== undefined).length;
    assert.ok(left > 0, `the connection went silent before every leaver was dropped (${left} left)`);
    await sync.incremental();
    assert.deepEqual(leavers.filter((i) => sync.current!.get(`user${i}@example.com`) !== undefined), [], 'the next incremental sync dropped the rest');
  });
});
