/**
 * A real mass removal (a third of the users leave at once) against sync.maxShrink, the way the
 * README tells an operator to accept it: the full syncs are refused and the old snapshot serves
 * (the leavers stay valid: OpenLDAP deletions wait for a full sync); raising sync.maxShrink and
 * reloading applies the listing at the next full sync, without a restart; putting the guard back
 * by reload keeps the accepted snapshot. Real slapd, the real service, real reloads from a file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const PEOPLE = 'ou=people,dc=example,dc=com';
const LEAVERS = ['user1', 'user2', 'user3', 'user4', 'user5'];

describe('accepting a real shrink of the directory', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const config = (maxShrink: number) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: path.join(dir, 'password'), timeout: '2s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '2s', incrementalInterval: '1s', maxShrink },
    log: { level: 'silent' },
  });
  const reload = async (maxShrink: number) => {
    const file = path.join(dir, `config-${maxShrink}.json`);
    await writeFile(file, JSON.stringify(config(maxShrink)));
    assert.equal(await app!.reload(file), true);
  };
  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-shrink-'));
    await writeFile(path.join(dir, 'password'), ldap.servicePassword, { mode: 0o600 });
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('refused at 0.1, applied after a reload with 0.5, kept after the guard is put back', async () => {
    app = await startApp(config(0.1));
    await until('the first snapshot', async () => (await ask('user1@example.com')) === 'valid/snapshot');
    for (const uid of LEAVERS) await ldap.modify(`dn: uid=${uid},${PEOPLE}\nchangetype: delete\n`);
    // Several full syncs come and go: each is refused, the old snapshot stays.
    await new Promise((r) => setTimeout(r, 6000));
    assert.equal(await ask('user1@example.com'), 'valid/snapshot', 'a refused listing changes nothing');
    await reload(0.5);
    await until('the shrink applied', async () => (await ask('user2@example.com')) === 'unknown/directory', 20_000, 250);
    assert.equal(await ask('alice@example.com'), 'valid/snapshot');
    await reload(0.1);
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(await ask('user3@example.com'), 'unknown/directory', 'the accepted snapshot stays');
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
  });
});
