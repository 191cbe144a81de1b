/**
 * A bind password file rewritten before the directory has the new password (a rotation done file
 * first, or a typo in the new Secret) on a directory that locks accounts (OpenLDAP ppolicy here;
 * AD's lockout threshold counts the same way). The service looks at the file every 10 s and tries
 * the new password by building a directory with it; each try is a refused bind, and a new
 * directory each time starts without the pause that keeps the running one from locking the
 * account. With a lockout after 5 refused binds, under a minute of the file ahead of the directory
 * locked the account for every service using it, and the new password was refused once the
 * directory had it. Real slapd with the ppolicy overlay, the service as `rcptgate serve` builds it.
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
const MAX_FAILURES = 5;

describe('a bind password file ahead of a directory that locks accounts (real slapd, ppolicy)', { timeout: 300_000 }, () => {
  let slapd: Slapd;
  let dir: string;
  let app: App | undefined;
  let client: SocketmapClient | undefined;
  before(async () => {
    slapd = await startSlapd({
      modules: ['ppolicy'],
      databaseLines: ['overlay ppolicy', `ppolicy_default "${POLICY}"`],
      ldifText: [`dn: ${POLICY}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: ${MAX_FAILURES}\npwdLockoutDuration: 0`],
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12g-lockout-'));
  });
  after(async () => {
    client?.close();
    await app?.close();
    await slapd?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function account(): Promise<{ failures: number; locked: boolean }> {
    const { ldapsearch } = requireTools('ldapsearch');
    const { stdout } = await exec(ldapsearch!, ['-x', '-LLL', '-H', slapd.url, '-D', slapd.adminDN, '-w', slapd.adminPassword, '-b', slapd.serviceDN, '-s', 'base', 'pwdFailureTime', 'pwdAccountLockedTime']);
    return { failures: stdout.split('\n').filter((l) => l.startsWith('pwdFailureTime:')).length, locked: /pwdAccountLockedTime:/.test(stdout) };
  }

  test('85 s of a new password the directory refuses: two refused binds, not locked; the new password is used as soon as the directory has it', async () => {
    const secret = path.join(dir, 'bind-password');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(secret, `${slapd.servicePassword}\n`);
    await writeFile(file, JSON.stringify({
      listen: { socketmap: '127.0.0.1:0', http: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, bindPasswordFile: secret, timeout: '2s' } },
      log: { level: 'silent' },
    }));
    app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    await app.start();
    client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    // Three valid answers cached: a new directory is checked with all three.
    for (const user of ['alice', 'alice.smith', 'bob']) assert.match(await client.query('recipients', `${user}@example.com`), /^OK /);

    await writeFile(secret, 'rotated-but-not-yet-0001\n');
    await sleep(85_000);
    const during = await account();
    // The running connections still serve meanwhile.
    assert.match(await client.query('recipients', 'dave@example.com'), /^(OK|NOTFOUND)/);
    assert.ok(during.failures <= 2, `refused binds while the file was ahead: ${during.failures}`);
    assert.equal(during.locked, false, 'the account is not locked');

    // The directory gets the new password and restarts (every connection binds again): the
    // running directory's old password is refused, which says the file is now right: taken at
    // the next look at the file, not after the pause (the next try was 2 minutes away).
    await slapd.modify(`dn: ${slapd.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: rotated-but-not-yet-0001\n`);
    await slapd.stop();
    await slapd.start();
    const restarted = Date.now();
    let reply = '';
    while (Date.now() - restarted < 150_000 && !(reply = await client.query('recipients', 'mallory@example.com')).startsWith('OK')) await sleep(1_000);
    const tookMs = Date.now() - restarted;
    assert.match(reply, /^OK /, 'the new password binds once the directory has it');
    assert.ok(tookMs < 40_000, `valid again ${Math.round(tookMs / 1000)} s after the directory took the new password`);
    assert.deepEqual(await account(), { failures: 0, locked: false }, 'the accepted bind cleared the count');
  });
});
