/**
 * An operator refreshes the snapshot by hand as root (`sudo rcptgate sync`) for a service that
 * runs as its own user, as the container image and most packages do. The new file was root's,
 * mode 0600: the service could not read it back, so its next start (with the directory down, the
 * reason snapshots exist) had no snapshot and deferred every recipient, and nothing said so until
 * then. The file written in the place of an existing one now keeps that file's owner. Real slapd,
 * the real CLI run as root; the service user's read is checked by reading as that user (setpriv).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { findTool, startSlapd, type Slapd } from '../helpers/slapd.js';

const SERVICE_UID = 10001;
let ldap: Slapd;
let dir: string;
const setpriv = findTool('setpriv');

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test runs rcptgate sync as root over a file of another user: run it as root');
  if (setpriv === null) throw new Error('setpriv not found: install util-linux');
  ldap = await startSlapd({ generatedUsers: 200 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10b-root-'));
  await chmod(dir, 0o755);
});
after(async () => {
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function sync(config: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'sync', '--config', config], { cwd: REPO_ROOT, env: { ...env, RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** True when the service user can read the file. */
function readableBy(uid: number, file: string): boolean {
  try {
    execFileSync(setpriv!, [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'head', '-c', '1', file], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('rcptgate sync run as root over the snapshot of a service user (real slapd, real CLI)', () => {
  test('the new snapshot stays the service user\'s, who can still read it', async () => {
    const snapshot = path.join(dir, 'recipients.snapshot');
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } }, sync: { enabled: true, snapshotPath: snapshot } }));
    // The service wrote it first (as its own user).
    const first = await sync(config);
    assert.equal(first.code, 0, first.stderr);
    await chown(snapshot, SERVICE_UID, SERVICE_UID);
    assert.ok(readableBy(SERVICE_UID, snapshot), 'the service user reads its own file');

    const manual = await sync(config);
    assert.equal(manual.code, 0, manual.stderr);
    const info = await stat(snapshot);
    assert.deepEqual([info.uid, info.gid], [SERVICE_UID, SERVICE_UID], 'the hand-run sync gave the file to root');
    assert.ok(readableBy(SERVICE_UID, snapshot), 'the service user can no longer read its snapshot');
  });
});
