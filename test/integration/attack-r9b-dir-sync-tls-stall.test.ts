/**
 * The change-driven removals of an incremental sync open a connection of their own. Behind a
 * middlebox (or a server) that accepts StartTLS and then never completes the TLS handshake,
 * opening it waited for ever: ldapts times each LDAP request but not the handshake. The sync
 * never ended, and since syncs run one at a time, no later sync, full or incremental, ran
 * again: the snapshot aged past sync.maxAge with every sync "in progress". Real slapd with TLS
 * behind a proxy that stalls only the removals' connection.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** Settles with `work`, or with 'still running' after `ms`. */
function within<T>(work: Promise<T>, ms: number): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

describe('an incremental sync whose removals connection stalls in the TLS handshake', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let dir: string;
  before(async () => {
    slapd = await startSlapd({ tls: true });
    proxy = await startFaultProxy(slapd.port);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r9b-tls-'));
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('fails within the timeout, and the syncs after it run', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, startTLS: true, tls: { caFile: slapd.caFile }, timeout: '1s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1h', detectRemovals: true },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
    const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword }, silentLogger());
    const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
    try {
      await sync.full();
      // The incremental listing gets the next connection; the removals the one after: its StartTLS
      // answer passes, then nothing more (the handshake never completes).
      const listing = proxy.connections.length;
      proxy.onServerMessage = (conn) => {
        if (proxy.connections.indexOf(conn) > listing) conn.blackhole();
      };
      const outcome = await within(
        sync.incremental().then(
          () => 'done',
          (err: unknown) => `failed: ${(err as Error).message}`,
        ),
        5_000,
      );
      assert.match(outcome, /^failed: .*no answer within 1s/, 'the incremental sync did not end');
      proxy.onServerMessage = null;
      const next = await within(sync.full(), 5_000);
      assert.notEqual(next, 'still running', 'the next full sync waited behind the stalled one');
      assert.equal(sync.current!.get('alice@example.com'), 'alice@example.com');
    } finally {
      proxy.onServerMessage = null;
      for (const c of proxy.open()) c.cut();
      await within(sync.stop(), 5_000);
      await directory.close();
    }
  });
});
