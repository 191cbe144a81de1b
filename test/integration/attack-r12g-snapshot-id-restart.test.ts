/**
 * A restart in snapshot mode while the directory cannot say which directory it is: the bind
 * account refused (a password rotated on the directory only), or the account not allowed to read
 * the base entry's entryUUID (an ACL tightened by a directory admin). The file's recorded
 * identifier cannot be compared: it must still be served (no file refused while the service
 * defers everyone), and the start must not wait on the question. Real slapd, the real service.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a snapshot file at a restart where the directory cannot tell its identifier (real slapd)', { timeout: 300_000 }, () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const file = () => path.join(dir, 'snapshot');
  const config = (bindDN: string) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN, timeout: '2s' } },
    sync: { enabled: true, snapshotPath: file(), interval: '1h', incrementalInterval: '30m', confirmMisses: false },
    log: { level: 'silent' },
  });
  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
  const stop = async () => {
    await app?.close();
    app = undefined;
  };

  before(async () => {
    // The service account may not read the base entry's entryUUID; the admin may.
    ldap = await startSlapd({ accessLines: ['access to dn.base="dc=example,dc=com" attrs=entryUUID by dn.exact="cn=rcptgate,ou=services,dc=example,dc=com" none by * read'] });
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12g-id-restart-'));
    // The file written by a full sync that read the identifier (bound as the admin).
    app = await startApp(config(ldap.adminDN), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.adminPassword });
    await app.syncOnce();
    await stop();
  });
  after(async () => {
    await stop();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the file records the identifier', async () => {
    const { readFile } = await import('node:fs/promises');
    const header = JSON.parse((await readFile(file(), 'latin1')).split('\n')[1]!) as { directoryId?: string };
    assert.match(header.directoryId ?? '', /^[0-9a-f-]{36}$/);
  });

  test('the bind account refused: the file serves at once, misses tempfail', async () => {
    const t0 = Date.now();
    app = await startApp(config(ldap.serviceDN), { RCPTGATE_LDAP_BIND_PASSWORD: 'rotated-on-the-directory-only' });
    assert.ok(Date.now() - t0 < 30_000, `start took ${Date.now() - t0} ms`);
    assert.equal(await ask('alice@example.com'), 'valid/snapshot');
    assert.match(await ask('nobody@example.com'), /^(unknown\/snapshot|tempfail\/)/);
    await stop();
  });

  test('entryUUID not readable by the bind account: the file is kept and decides misses', async () => {
    app = await startApp(config(ldap.serviceDN), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    assert.equal(await ask('alice@example.com'), 'valid/snapshot');
    assert.equal(await ask('nobody@example.com'), 'unknown/snapshot');
    await stop();
  });
});
