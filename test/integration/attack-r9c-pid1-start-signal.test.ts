/**
 * SIGTERM while `rcptgate serve` starts, as PID 1 of its PID namespace (the container image
 * runs `node dist/main.js serve` as PID 1; Kubernetes deletes a pod that is still loading its
 * snapshot). The kernel ignores a signal PID 1 has no handler for, and serve installed its
 * SIGTERM handler only once the listeners were up: the signal was lost, the process went on to
 * serve until SIGKILL. It now exits 0 at once, before any listener opens. The snapshot is a real
 * 2,000,000-address file; unshare(1) gives the real PID 1 semantics.
 * `rcptgate sync` run as a Kubernetes Job is PID 1 too: a SIGTERM during its listing was ignored
 * and the sync ran to its end; it now exits 143 at once, the snapshot file left as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { writeSnapshot } from '../../src/snapshot/file.js';
import { snapshotSource } from '../../src/snapshot/sync.js';
import { startDelayProxy } from '../helpers/delay-proxy.js';
import { freePort } from '../helpers/ports.js';
import { REPO_ROOT } from '../helpers/process.js';
import { findTool, startSlapd, type Slapd } from '../helpers/slapd.js';

const ADDRESSES = 2_000_000;

/** Host pids of the children of `pid`. */
function children(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
}

describe('SIGTERM while serve starts as PID 1 (real slapd, real snapshot file)', () => {
  let ldap: Slapd;
  let dir: string;
  let outer: ReturnType<typeof spawn> | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-pid1-'));
  });
  after(async () => {
    if (outer && outer.exitCode === null && outer.signalCode === null) {
      for (const pid of children(outer.pid!)) process.kill(pid, 'SIGKILL');
      outer.kill('SIGKILL');
    }
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('exits 0 at once instead of losing the signal and serving on', async () => {
    const unshare = findTool('unshare');
    assert.ok(unshare, 'unshare (util-linux) is required: it gives the process PID 1 of a new namespace');
    const snapshotPath = path.join(dir, 'snapshot');
    const port = await freePort();
    const config = {
      listen: { http: `127.0.0.1:${port}`, socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
      sync: { enabled: true, snapshotPath, interval: '1h' },
    };
    const records = function* () {
      for (let i = 0; i < ADDRESSES; i++) yield { dn: `uid=u${i},ou=people,${ldap.baseDN}`, canonical: `u${i}@example.com`, addresses: [`u${i}@example.com`] };
    };
    await writeSnapshot(snapshotPath, snapshotSource(validateConfig(config)), Date.now(), records());
    const cfg = path.join(dir, 'rcptgate.json');
    await writeFile(cfg, JSON.stringify(config));

    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))), RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    outer = spawn(unshare, ['--pid', '--fork', process.execPath, '--import', 'tsx', 'src/main.ts', 'serve', '--config', cfg], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | string>((resolve) => outer!.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    const logs: Array<Record<string, unknown>> = [];
    let stderr = '';
    outer.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    let sent = -1;
    let signalled: () => void = () => undefined;
    const signalSent = new Promise<void>((resolve) => (signalled = resolve));
    let buf = '';
    outer.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        logs.push(line);
        // The start has begun (the notices come just before the snapshot loads): stop now.
        if (sent < 0 && line.key === 'directory.canaries') {
          const [node] = children(outer!.pid!);
          assert.ok(node, 'the node process under unshare');
          assert.match(readFileSync(`/proc/${node}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m, 'node is PID 1 of its namespace');
          sent = performance.now();
          process.kill(node, 'SIGTERM');
          signalled();
        }
      }
    });
    const startTimeout = setTimeout(() => signalled(), 30_000);
    await Promise.race([signalSent, exited]);
    clearTimeout(startTimeout);
    assert.ok(sent >= 0, `the start never began; stderr: ${stderr.slice(-300)}`);
    const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running 5 s after SIGTERM'), 5_000))]);
    assert.equal(code, 0, `exit: ${code}; logs: ${JSON.stringify(logs.map((l) => l.msg))}; stderr: ${stderr.slice(-300)}`);
    assert.ok(performance.now() - sent < 3_000, 'exited promptly');
    assert.ok(!logs.some((l) => l.msg === 'listening'), 'no listener opened');
    assert.ok(logs.some((l) => l.msg === 'stopping before the listeners opened'));
  });

  test('rcptgate sync exits 143 at once instead of listing on', async () => {
    const unshare = findTool('unshare');
    assert.ok(unshare, 'unshare (util-linux) is required: it gives the process PID 1 of a new namespace');
    // One entry per page, each a round trip to a directory 150 ms away: the listing takes seconds.
    const proxy = await startDelayProxy(ldap.port, 150);
    const snapshotPath = path.join(dir, 'sync-snapshot');
    const cfg = path.join(dir, 'sync.json');
    await writeFile(
      cfg,
      JSON.stringify({
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, pageSize: 1 } },
        sync: { enabled: true, snapshotPath },
      }),
    );
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))), RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    const job = spawn(unshare!, ['--pid', '--fork', process.execPath, '--import', 'tsx', 'src/main.ts', 'sync', '--config', cfg], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    outer = job;
    const exited = new Promise<number | string>((resolve) => job.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    let stderr = '';
    let started: () => void = () => undefined;
    const listing = new Promise<void>((resolve) => (started = resolve));
    job.stderr!.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      if (stderr.includes('snapshot not loaded')) started();
    });
    try {
      await Promise.race([listing, exited]);
      await new Promise((r) => setTimeout(r, 800)); // well into the listing
      assert.equal(job.exitCode, null, `the sync ended before it could be stopped: ${stderr.slice(-300)}`);
      const [node] = children(job.pid!);
      assert.match(readFileSync(`/proc/${node}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m, 'rcptgate sync is PID 1 of its namespace');
      const t0 = performance.now();
      process.kill(node!, 'SIGTERM');
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running 3 s after SIGTERM'), 3_000))]);
      assert.equal(code, 143, `exit: ${code}; stderr: ${stderr.slice(-300)}`);
      assert.ok(performance.now() - t0 < 2_000);
      await assert.rejects(access(snapshotPath), 'no snapshot file from a listing cut short');
    } finally {
      await proxy.close();
    }
  });
});
