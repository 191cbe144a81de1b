/**
 * `rcptgate sync` (a cron job, an init container) against a directory that suddenly lists far
 * fewer entries: a replica that is behind, an ACL change. `serve` refuses such a listing
 * (sync.maxShrink) and keeps its snapshot, but the one-shot command did not read the existing
 * file first, so it had nothing to compare with and replaced a snapshot of 300 entries with one
 * of 13. The next start loaded that, and its own syncs then compared against the shrunken one.
 * Two real slapd servers with the same base DN play the full directory and the stale replica.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSnapshot } from '../../src/snapshot/file.js';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let full: Slapd;
let replica: Slapd;
let dir: string;

before(async () => {
  [full, replica] = await Promise.all([startSlapd({ generatedUsers: 300 }), startSlapd()]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-sync-'));
});
after(async () => {
  await full?.close();
  await replica?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function sync(config: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'sync', '--config', config], {
      cwd: REPO_ROOT,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdout.resume();
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function configFor(ldap: Slapd, name: string, snapshotPath: string): Promise<string> {
  const password = path.join(dir, `${name}.password`);
  await writeFile(password, ldap.servicePassword);
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(
    file,
    JSON.stringify({
      domains: ['example.com', 'example.org'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: password, timeout: '2s' } },
      sync: { enabled: true, snapshotPath },
      log: { level: 'warn' },
    }),
  );
  return file;
}

describe('rcptgate sync against a directory that lists far fewer entries', () => {
  test('is refused by sync.maxShrink like a sync in serve, and the snapshot stays', async () => {
    const snapshot = path.join(dir, 'snapshot');
    const first = await sync(await configFor(full, 'full', snapshot));
    assert.equal(first.code, 0, first.stderr);
    const before = await readFile(snapshot);
    const { header } = await readSnapshot(snapshot, 'ldap|openldap|dc=example,dc=com|sub|');
    assert.ok(header.entries >= 300, `${header.entries} entries`);

    const second = await sync(await configFor(replica, 'replica', snapshot));
    assert.equal(second.code, 75, `the shrunken listing was accepted: ${second.stderr}`);
    assert.match(second.stderr, /sync\.maxShrink/);
    assert.deepEqual(await readFile(snapshot), before, 'the snapshot was replaced');
  });
});
