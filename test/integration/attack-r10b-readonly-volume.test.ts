/**
 * The data volume holding the snapshot is remounted read-only by the kernel after I/O errors,
 * and then the process restarts (OOM kill, liveness probe, node drain). The start refused a
 * snapshot directory it could not write into as a configuration error: serve exited 78 and served
 * nothing, although the snapshot file still read fine and the directory might answer: every MTA
 * got connection refused (deferred mail) until someone repaired the disk. The running service
 * already rides out the same disk (a sync that cannot write is served from memory and logged);
 * a start now does too: it loads the file, serves, and logs at error that nothing will be saved;
 * config check warns (exit 0). `rcptgate sync`, whose point is the file, still fails (75).
 * Real slapd, the real CLI, a real read-only filesystem (a tmpfs remounted ro; needs root).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, REPO_ROOT, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
let volume = '';
let mounted = false;
const procs: ServeProcess[] = [];

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a tmpfs and remounts it read-only: run it as root');
  ldap = await startSlapd({ generatedUsers: 300 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10b-ro-'));
  volume = path.join(dir, 'data');
  await mkdir(volume);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', volume]);
  mounted = true;
});
after(async () => {
  for (const p of procs) await p.kill();
  if (mounted) execFileSync('umount', [volume]);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const env = () => ({ RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('a restart while the snapshot volume is read-only (real slapd, real CLI)', () => {
  test('serves from the snapshot file it can still read, says nothing will be saved, and is ready', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    await writeFile(
      cfg,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
        sync: { enabled: true, snapshotPath: path.join(volume, 'recipients.snapshot') },
      }),
    );
    const first = await run(['sync', '--config', cfg]);
    assert.equal(first.code, 0, first.stderr);
    execFileSync('mount', ['-o', 'remount,ro', volume]);

    const checked = await run(['config', 'check', '--config', cfg]);
    assert.equal(checked.code, 0, `config check: ${checked.stderr}`);
    assert.match(checked.stderr, /warning: sync\.snapshotPath: .*read-only filesystem/);
    const synced = await run(['sync', '--config', cfg]);
    assert.equal(synced.code, 75, `sync onto the read-only volume: ${synced.stdout}${synced.stderr}`);

    // The directory is down as well: only the snapshot file can answer.
    await ldap.stop();
    try {
      const p = startServe(['--config', cfg], env());
      procs.push(p);
      const port = await Promise.race([listenerPort(p, 'http'), p.exited.then((code) => assert.fail(`serve exited ${code}: ${JSON.stringify(p.logs.slice(-3))}`))]);
      const body = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/user123@example.com`)).json()) as { verdict: string; source: string };
      assert.equal(`${body.verdict}/${body.source}`, 'valid/snapshot');
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      const line = await p.waitForLog((l) => l.key === 'sync.snapshotPath');
      assert.equal(line.level, 50, 'logged at error');
      assert.match(String(line.msg), /read-only filesystem/);
    } finally {
      await ldap.start();
    }
  });
});
