/**
 * A SIGHUP that changes a `sync.*` setting during a directory outage: the operator moves the
 * snapshot to another volume (the old one is full) and lengthens the interval. The reload built a
 * new syncer and had it read its snapshot from the file: at the new path there is none yet (and
 * a file a full disk refused lags what was served), so the snapshot served until then was
 * dropped and every recipient not in the answer cache went from `valid` to `tempfail` for the
 * rest of the outage. A reload that cannot change an answer must not defer mail: the snapshot of
 * the same directory now goes on serving, and is written at the new path at once, so a restart
 * during the outage still answers from it. Real slapd, the real CLI (`serve`, `check`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, REPO_ROOT, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

describe('a reload that moves the snapshot during a directory outage (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd({ generatedUsers: 500 });
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r10b-reload-'));
    await mkdir(path.join(dir, 'new-volume'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cfg = () => path.join(dir, 'rcptgate.yaml');
  const writeConfig = (sync: Record<string, unknown>) =>
    writeFile(
      cfg(),
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'recipients.snapshot'), ...sync },
      }),
    );
  const env = () => ({ RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  const verdict = async (port: number, address: string) => {
    const body = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string; source: string };
    return `${body.verdict}/${body.source}`;
  };
  const check = (address: string): Promise<{ code: number | null; stdout: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', '--config', cfg(), address], { cwd: REPO_ROOT, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.on('close', (code) => resolve({ code, stdout }));
    });

  test('keeps answering from the snapshot it served, and a restart during the outage finds it at the new path', async () => {
    await writeConfig({});
    const p = startServe(['--config', cfg()], env());
    procs.push(p);
    const port = await listenerPort(p, 'http');
    await p.waitForLog((l) => l.msg === 'full sync done', 30_000);
    await ldap.stop();
    try {
      assert.equal(await verdict(port, 'user101@example.com'), 'valid/snapshot');

      await writeConfig({ snapshotPath: path.join(dir, 'new-volume', 'recipients.snapshot'), interval: '30m' });
      p.child.kill('SIGHUP');
      await p.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded'));
      // Addresses never asked before: only the snapshot knows them.
      const after = await Promise.all([102, 203, 304, 405].map((n) => verdict(port, `user${n}@example.com`)));
      assert.deepEqual(after, Array(4).fill('valid/snapshot'), 'the reload dropped the snapshot during the outage');

      // The restart finds the snapshot at the new path (the old file is gone with the old volume).
      await rm(path.join(dir, 'recipients.snapshot'));
      await until('the snapshot written at the new path', () => existsSync(path.join(dir, 'new-volume', 'recipients.snapshot')), 10_000);
      p.child.kill('SIGKILL');
      await p.exited;
      const restarted = await check('user456@example.com');
      assert.equal(restarted.code, 0, `restart during the outage: ${restarted.stdout}`);
      assert.match(restarted.stdout, /^user456@example\.com\tvalid\t.*\(snapshot\)/);
    } finally {
      await ldap.start();
    }
  });
});
