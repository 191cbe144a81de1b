/**
 * A snapshot or answer file path on a read-only filesystem where no file exists yet: a path off
 * the writable volume (a container run with a read-only root, systemd's ProtectSystem=strict, a
 * volume mounted elsewhere than the config says). Since a read-only filesystem became a warning
 * (for a data volume the kernel remounted read-only, whose file still reads), this was a warning
 * too: config check exited 0 and serve ran without a snapshot it could ever save, so a restart
 * during a directory outage found none and deferred every recipient, with a log line at start the
 * only sign. With no file to read it is refused again (exit 78, naming the key); a file that
 * exists on a read-only filesystem is still read with a warning. Real slapd, the real CLI, a
 * real read-only filesystem (a tmpfs mounted ro; needs root).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
let volume = '';
let mounted = false;

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a read-only tmpfs: run it as root');
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10e-ro-'));
  volume = path.join(dir, 'data');
  await mkdir(volume);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', volume]);
  mounted = true;
});
after(async () => {
  if (mounted) execFileSync('umount', [volume]);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    // serve started on the bad path would run on: stop it after 10 s so the test reports it.
    const timer = setTimeout(() => child.kill('SIGTERM'), 10_000);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

describe('a snapshot or answer file path on a read-only filesystem with no file there (real slapd, real CLI)', () => {
  for (const key of ['sync.snapshotPath', 'cache.persistPath'] as const) {
    test(`${key}: config check and serve refuse it (exit 78, naming the key)`, async () => {
      const cfg = path.join(dir, `${key}.yaml`);
      const file = path.join(volume, 'never-written');
      await writeFile(
        cfg,
        JSON.stringify({
          listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
          ...(key === 'sync.snapshotPath' ? { sync: { enabled: true, snapshotPath: file } } : { cache: { persistPath: file } }),
        }),
      );
      const checked = await run(['config', 'check', '--config', cfg]);
      assert.equal(checked.code, 78, `config check: ${checked.stderr}`);
      assert.ok(checked.stderr.includes(key) && /read-only filesystem/.test(checked.stderr), checked.stderr);
      const served = await run(['serve', '--config', cfg]);
      assert.equal(served.code, 78, `serve: ${served.stderr.slice(-400)}`);
      assert.ok(served.stdout.includes(key) || served.stderr.includes(key), 'serve names the key');
    });
  }
});
