/**
 * A careless administrator gives rcptgate a wrong bind password (a typo, a rotation done in the
 * wrong order) on a directory with an account lockout policy (OpenLDAP ppolicy here; AD's
 * lockout threshold counts the same way). Every lookup asked for a new connection and each
 * refused bind counted: about one refused bind a second under a spam run, so the account was
 * locked within seconds, for every service using it, and stayed locked after the password was
 * fixed: rcptgate deferred every uncached recipient until an administrator unlocked it. Binds
 * are now paused after every server refused them. Real slapd with the ppolicy overlay, the
 * service as `rcptgate serve` builds it, lookups through its socketmap listener.
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
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';

const exec = promisify(execFile);
const POLICY = 'cn=default,ou=groups,dc=example,dc=com';
const MAX_FAILURES = 3;

describe('a wrong bind password on a directory that locks accounts', () => {
  let slapd: Slapd;
  let dir: string;
  let app: App | undefined;
  let client: SocketmapClient | undefined;
  before(async () => {
    slapd = await startSlapd({
      modules: ['ppolicy'],
      databaseLines: ['overlay ppolicy', `ppolicy_default "${POLICY}"`],
      // Locked after MAX_FAILURES refused binds, until an administrator unlocks it.
      ldifText: [`dn: ${POLICY}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: ${MAX_FAILURES}\npwdLockoutDuration: 0`],
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-lockout-'));
  });
  after(async () => {
    client?.close();
    await app?.close();
    await slapd?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The service account's refused binds as ppolicy recorded them, and whether it is locked. */
  async function account(): Promise<{ failures: number; locked: boolean }> {
    const { ldapsearch } = requireTools('ldapsearch');
    const { stdout } = await exec(ldapsearch!, ['-x', '-LLL', '-H', slapd.url, '-D', slapd.adminDN, '-w', slapd.adminPassword, '-b', slapd.serviceDN, '-s', 'base', 'pwdFailureTime', 'pwdAccountLockedTime']);
    return { failures: stdout.split('\n').filter((l) => l.startsWith('pwdFailureTime:')).length, locked: /pwdAccountLockedTime:/.test(stdout) };
  }

  test('a spam run while the password is wrong costs one refused bind; the fixed password is answered at once', async () => {
    const secret = path.join(dir, 'bind-password');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(secret, 'a-typo\n');
    await writeFile(file, JSON.stringify({
      listen: { socketmap: '127.0.0.1:0', http: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, bindPasswordFile: secret, timeout: '2s' } },
      log: { level: 'silent' },
    }));
    app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    await app.start();
    client = await SocketmapClient.connect(app.addresses.socketmap!.port);

    // A spam run of valid and unknown recipients for 5 s, 20 lookups at a time.
    const replies = new Map<string, number>();
    const started = Date.now();
    for (let i = 0; Date.now() - started < 5_000; i++) {
      const batch = Array.from({ length: 20 }, (_, k) => client!.query('recipients', k % 4 === 0 ? 'alice@example.com' : `spam${i}-${k}@example.com`));
      for (const reply of await Promise.all(batch)) replies.set(reply.split(' ')[0]!, (replies.get(reply.split(' ')[0]!) ?? 0) + 1);
      await sleep(50);
    }
    assert.deepEqual([...replies.keys()], ['TEMP'], `every lookup deferred while no bind is accepted: ${JSON.stringify([...replies])}`);
    assert.ok(replies.get('TEMP')! >= 500, `the spam run asked enough: ${replies.get('TEMP')}`);
    const during = await account();
    assert.equal(during.failures, 1, `refused binds counted by the directory during the spam run: ${during.failures}`);
    assert.equal(during.locked, false, 'the account is not locked');

    // The administrator fixes the password file and reloads: answered at once, nothing locked.
    await writeFile(secret, `${slapd.servicePassword}\n`);
    assert.equal(await app.reload(file), true, 'the reload with the right password is taken');
    assert.equal(await client.query('recipients', 'alice@example.com'), 'OK alice@example.com');
    assert.match(await client.query('recipients', 'nobody@example.com'), /^NOTFOUND/);
    assert.deepEqual(await account(), { failures: 0, locked: false }, 'the accepted bind cleared the count');
  });
});
