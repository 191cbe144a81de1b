/**
 * A snapshot file taken from another directory with the same base DN and filter: a volume
 * restored from the wrong site's backup, a staging service's file copied into production, a
 * cloned persistent volume. The file names base DN, scope, filter and preset, which match, so it
 * was trusted as this directory's listing: with sync.confirmMisses false every user the other
 * directory lacks was rejected as unknown (550), and since the file's last full sync was recent
 * the next one (the only sync that re-lists unchanged entries) was an interval away. Real slapd,
 * two of them (same tree, different users); the real service.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

/** Last changed a year ago: no incremental sync re-lists it. */
const OLD_STAMP = `${new Date().getUTCFullYear() - 1}0101000000Z`;
const ONLY_HERE = ['dn: uid=hereonly,ou=people,dc=example,dc=com', 'objectClass: inetOrgPerson', 'cn: hereonly', 'sn: hereonly', 'uid: hereonly', 'mail: hereonly@example.com', `createTimestamp: ${OLD_STAMP}`, `modifyTimestamp: ${OLD_STAMP}`].join('\n');

describe('a snapshot file from another directory with the same base DN and filter', () => {
  let here: Slapd;
  let there: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const config = (ldap: Slapd, file: string) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, file), interval: '1h', incrementalInterval: '30m', confirmMisses: false },
    log: { level: 'silent' },
  });
  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
  const stop = async () => {
    await app?.close();
    app = undefined;
  };

  before(async () => {
    here = await startSlapd({ ldifText: [ONLY_HERE] });
    there = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-other-site-'));
  });
  after(async () => {
    await stop();
    here?.resume();
    await here?.close();
    await there?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('is refused while this directory answers: its users are not rejected', async () => {
    app = await startApp(config(there, 'there'), { RCPTGATE_LDAP_BIND_PASSWORD: there.servicePassword });
    await app.syncOnce();
    await stop();
    await copyFile(path.join(dir, 'there'), path.join(dir, 'here'));
    app = await startApp(config(here, 'here'), { RCPTGATE_LDAP_BIND_PASSWORD: here.servicePassword });
    const seen: string[] = [];
    for (let i = 0; i < 5; i++, await new Promise((r) => setTimeout(r, 200))) seen.push(await ask('hereonly@example.com'));
    assert.ok(!seen.includes('unknown/snapshot'), `a user of this directory rejected from the other one's listing: ${seen.join(', ')}`);
    assert.match(seen.at(-1)!, /^valid\//);
    // This directory's own listing replaces it at once.
    await until('the snapshot of this directory', async () => (await ask('hereonly@example.com')) === 'valid/snapshot');
    assert.equal(await ask('nobody-here@example.com'), 'unknown/snapshot');
  });

  test('this directory\'s own file, loaded during an outage, still serves', async () => {
    await stop();
    app = await startApp(config(here, 'own'), { RCPTGATE_LDAP_BIND_PASSWORD: here.servicePassword });
    await app.syncOnce();
    await stop();
    await here.pause();
    try {
      app = await startApp(config(here, 'own'), { RCPTGATE_LDAP_BIND_PASSWORD: here.servicePassword });
      assert.equal(await ask('hereonly@example.com'), 'valid/snapshot');
      assert.equal(await ask('nobody-here@example.com'), 'tempfail/directory');
    } finally {
      await stop();
      here.resume();
    }
    app = await startApp(config(here, 'own'), { RCPTGATE_LDAP_BIND_PASSWORD: here.servicePassword });
    assert.equal(await ask('hereonly@example.com'), 'valid/snapshot', 'checked against this directory and kept');
    assert.equal(await ask('nobody-here@example.com'), 'unknown/snapshot');
  });
});
