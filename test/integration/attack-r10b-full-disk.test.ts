/**
 * The snapshot volume fills up while `rcptgate sync` writes the new file. A write() on a disk
 * that runs full takes what fits and reports it only in its byte count; the next write() fails
 * with ENOSPC. The last section of the file was written with one write() whose count was never
 * read: when the disk ran full inside it, the file cut short was fsynced and renamed over the
 * good one, and the sync exited 0. The next start refused the torn file (truncated), and with
 * the directory down every recipient was deferred instead of answered from the old snapshot.
 * Real slapd, the real CLI, and a real full filesystem: a tmpfs sized so the new file runs out
 * of room inside its last section (needs root to mount it).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
let mountPoint = '';
let mounted = false;

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs to fill a disk: run it as root');
  ldap = await startSlapd({ generatedUsers: 3000 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10b-disk-'));
  mountPoint = path.join(dir, 'volume');
  await mkdir(mountPoint);
});
after(async () => {
  if (mounted) execFileSync('umount', [mountPoint]);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: REPO_ROOT,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function configFor(name: string, snapshotPath: string): Promise<string> {
  const password = path.join(dir, 'password');
  await writeFile(password, ldap.servicePassword);
  const file = path.join(dir, `${name}.yaml`);
  const ldapConfig = { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: password, timeout: '2s' };
  await writeFile(file, JSON.stringify({ domains: ['example.com'], directory: { kind: 'ldap', ldap: ldapConfig }, sync: { enabled: true, snapshotPath }, log: { level: 'warn' } }));
  return file;
}

const PAGE = 4096;
const pages = (bytes: number) => Math.ceil(bytes / PAGE) * PAGE;

describe('rcptgate sync on a volume that runs full while the snapshot is written', () => {
  test('fails with exit 75 and leaves the previous file, which a restart with the directory down answers from', async () => {
    // The good file, written where there is room; its layout says how long the last section is.
    const good = path.join(dir, 'good.snapshot');
    const first = await run(['sync', '--config', await configFor('good', good)]);
    assert.equal(first.code, 0, first.stderr);
    const bytes = await readFile(good);
    const header = JSON.parse(bytes.toString('utf8').split('\n')[1]!) as { layout: { chunks: number[] } };
    const last = header.layout.chunks.at(-1)!;
    assert.ok(last > 4 * PAGE, `last section only ${last} bytes`);

    // Room for the old file plus the new one (the same listing) minus half its last section.
    const size = pages(bytes.length) + Math.floor((bytes.length - last / 2) / PAGE) * PAGE;
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint]);
    mounted = true;
    const snapshot = path.join(mountPoint, 'recipients.snapshot');
    await copyFile(good, snapshot);
    const config = await configFor('full', snapshot);

    const second = await run(['sync', '--config', config]);
    assert.equal(second.code, 75, `a file cut short by the full disk passed as written: exit ${second.code}, ${second.stdout}${second.stderr}`);
    assert.match(second.stderr, /ENOSPC|no space/i);
    assert.deepEqual(await readFile(snapshot), bytes, 'the previous snapshot was replaced');
    assert.deepEqual(await readdir(mountPoint), ['recipients.snapshot'], 'a temp file was left on the full volume');

    await ldap.stop();
    try {
      const check = await run(['check', '--config', config, 'user1234@example.com']);
      assert.equal(check.code, 0, `after a restart with the directory down: ${check.stdout}${check.stderr}`);
      assert.match(check.stdout, /^user1234@example\.com\tvalid\t/);
    } finally {
      await ldap.start();
    }
  });
});
