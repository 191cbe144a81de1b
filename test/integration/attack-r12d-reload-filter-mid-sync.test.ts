/**
 * A reload that changes directory.ldap.filter (a filter that left some users out, corrected)
 * while a sync is running. The new engine was installed with the snapshot taken under the old
 * filter, and kept it until the running sync had stopped: with sync.confirmMisses false, the
 * users the old filter left out were rejected as unknown (550) by the new configuration that
 * lists them, for as long as that sync took to stop (seconds against a distant directory). Real
 * slapd behind a proxy that holds every chunk 700 ms (a directory far away, so each sync takes a
 * while), the real service, a real reload from a file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const OLD_FILTER = '(&(objectClass=inetOrgPerson)(!(uid=bob))(mail=%s))';
const NEW_FILTER = '(&(objectClass=inetOrgPerson)(mail=%s))';

describe('a reload that changes the filter while a sync runs', () => {
  let ldap: Slapd;
  let proxy: DelayProxy;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  // The new config also serves example.org: its postmaster (valid by rule) tells that it is installed.
  const config = (filter: string, domains = ['example.com']) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains,
    directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: path.join(dir, 'password'), timeout: '15s', filter } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1s', confirmMisses: false },
    log: { level: 'silent' },
  });

  before(async () => {
    ldap = await startSlapd();
    proxy = await startDelayProxy(ldap.port, 700);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-reload-filter-'));
    await writeFile(path.join(dir, 'password'), ldap.servicePassword, { mode: 0o600 });
  });
  after(async () => {
    await app?.close();
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('no user the new filter lists is rejected while the reload waits for the old sync', async () => {
    app = await startApp(config(OLD_FILTER));
    await app.syncOnce();
    const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
    assert.equal(await ask('alice@example.com'), 'valid/snapshot');
    assert.equal(await ask('bob@example.com'), 'unknown/snapshot', 'left out by the old filter');
    // Incremental syncs run back to back against the distant directory: one is running now.
    await new Promise((r) => setTimeout(r, 1500));
    const file = path.join(dir, 'new.json');
    await writeFile(file, JSON.stringify(config(NEW_FILTER, ['example.com', 'example.org'])));
    const seen: string[] = [];
    let reloading = true;
    const poll = (async () => {
      while (reloading) {
        // Only once the new configuration answers: before, the old filter rightly leaves bob out.
        if ((await ask('postmaster@example.org')).startsWith('valid')) seen.push(await ask('bob@example.com'));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = performance.now();
    const ok = await app.reload(file);
    const seconds = (performance.now() - t0) / 1000;
    reloading = false;
    await poll;
    assert.equal(ok, true);
    assert.equal(await ask('postmaster@example.org'), 'valid/static');
    const rejected = seen.filter((v) => v.startsWith('unknown')).length;
    console.log(`reload took ${seconds.toFixed(1)} s; bob once it was installed: ${rejected} of ${seen.length} unknown (${[...new Set(seen)].join(', ')})`);
    assert.ok(seen.length > 0, 'bob was asked once the new configuration answered');
    assert.equal(rejected, 0, `bob, listed by the new filter, was rejected ${rejected} times during the reload: ${seen.join(', ')}`);
    // The new filter's own snapshot follows.
    await until('bob valid from the new snapshot', async () => (await ask('bob@example.com')) === 'valid/snapshot', 120_000, 500);
  });
});
