/**
 * Snapshot mode with two replicas; the first refuses the bind account (restored without it, a
 * rotated password not yet replicated there) and locks accounts after 3 refused binds (ppolicy;
 * AD's lockout threshold counts the same way). Binds of the lookup pool are paused at a server
 * that refused them, but the change feed of every incremental sync (removals, sync.detectRemovals,
 * on by default) opened its own connection, trying the URLs in order: one refused bind at the
 * first replica every sync.incrementalInterval, which locked the account there within three
 * syncs. The change feed now binds where the pool would (a server that refused the bind last, and
 * not while its pause lasts), and its refusals pause that server like the pool's own; a server
 * refusing while another accepts is paused too (it was only tried last for 30 s, then refused
 * again by the next new connection).
 * Real slapd servers (ppolicy on the first), the service as `rcptgate serve` builds it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';

const exec = promisify(execFile);
const POLICY = 'cn=default,ou=groups,dc=example,dc=com';

describe('the change feed of snapshot mode and a replica refusing the bind account', () => {
  let locking: Slapd;
  let healthy: Slapd;
  let dir: string;
  let app: App | undefined;
  before(async () => {
    [locking, healthy] = await Promise.all([
      startSlapd({
        modules: ['ppolicy'],
        databaseLines: ['overlay ppolicy', `ppolicy_default "${POLICY}"`],
        ldifText: [`dn: ${POLICY}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 3\npwdLockoutDuration: 0`],
      }),
      startSlapd(),
    ]);
    await locking.modify(`dn: ${locking.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: an-older-password\n`);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-change-feed-'));
  });
  after(async () => {
    await app?.close();
    await Promise.all([locking?.close(), healthy?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  async function refusedBinds(): Promise<{ failures: number; locked: boolean }> {
    const { ldapsearch } = requireTools('ldapsearch');
    const { stdout } = await exec(ldapsearch!, ['-x', '-LLL', '-H', locking.url, '-D', locking.adminDN, '-w', locking.adminPassword, '-b', locking.serviceDN, '-s', 'base', 'pwdFailureTime', 'pwdAccountLockedTime']);
    return { failures: stdout.split('\n').filter((l) => l.startsWith('pwdFailureTime:')).length, locked: /pwdAccountLockedTime:/.test(stdout) };
  }

  test('incremental syncs every second for 40 s (past the 30 s a refusing server is tried last) cost the refusing replica at most 2 refused binds', async () => {
    const secret = path.join(dir, 'bind-password');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(secret, `${healthy.servicePassword}\n`);
    await writeFile(file, JSON.stringify({
      listen: { socketmap: '127.0.0.1:0', http: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [locking.url, healthy.url], baseDN: healthy.baseDN, bindDN: healthy.serviceDN, bindPasswordFile: secret, timeout: '2s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'recipients.snapshot'), interval: '1h', incrementalInterval: '1s' },
      log: { level: 'silent' },
    }));
    app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    await app.start();
    await sleep(40_000);
    const seen = await refusedBinds();
    assert.equal(seen.locked, false, `the account on the first replica is not locked (${seen.failures} refused binds)`);
    assert.ok(seen.failures <= 2, `refused binds at the first replica: ${seen.failures}`);
  });
});
