/**
 * `rcptgate sync` beside a running service (the README supports it), used as the README says to
 * apply a real shrink: RCPTGATE_SYNC_MAX_SHRINK=1 for the one run. The service never read the file
 * the command wrote: it went on serving the users who had left from its own older snapshot,
 * refused its own full syncs, and its next incremental sync with a change wrote that older
 * snapshot over the file, so the shrink the operator had applied was undone, on disk too. Real
 * slapd, the real service in this process, the real command as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { readSnapshot } from '../../src/snapshot/file.js';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const run = promisify(execFile);
const PEOPLE = 'ou=people,dc=example,dc=com';
const LEAVERS = ['user1', 'user2', 'user3', 'user4', 'user5'];

describe('rcptgate sync beside a running service', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const config = () => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: path.join(dir, 'password'), timeout: '2s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1s' },
    log: { level: 'silent' },
  });
  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-cli-beside-'));
    await writeFile(path.join(dir, 'password'), ldap.servicePassword, { mode: 0o600 });
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the shrink the command applied is served and stays on disk', async () => {
    app = await startApp(config());
    await until('the first snapshot', async () => (await ask('user1@example.com')) === 'valid/snapshot');
    for (const uid of LEAVERS) await ldap.modify(`dn: uid=${uid},${PEOPLE}\nchangetype: delete\n`);
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify(config()));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'sync', '--config', file], { cwd: REPO_ROOT, env: { ...env, RCPTGATE_SYNC_MAX_SHRINK: '1' } });
    const accepted = Number(/entries=(\d+)/.exec(stdout)![1]);
    // A change the next incremental sync merges (and writes).
    await ldap.modify(`dn: uid=alice,${PEOPLE}\nchangetype: modify\nadd: mail\nmail: alice.new@example.com\n`);
    await until('the change merged', async () => (await ask('alice.new@example.com')) === 'valid/snapshot', 20_000, 250);
    assert.equal(await ask('user1@example.com'), 'unknown/directory', 'a user who left, served from the snapshot the command wrote');
    const source = 'ldap|openldap|dc=example,dc=com|sub|';
    assert.equal((await readSnapshot(path.join(dir, 'snapshot'), source)).header.entries, accepted, 'the file keeps the listing the command applied');
  });
});
