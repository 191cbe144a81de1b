/**
 * Two services given the same `cache.persistPath` or `sync.snapshotPath` (a copied config, a
 * staging instance pointed at another directory) wrote the same file in turn, each replacing the
 * other's: after a restart during an outage one of them served the other's recipients, or none.
 * The second one now refuses to start (exit 78) naming the path and the running holder. A lock
 * left by a process killed with SIGKILL (or a file of the same name that no process holds, such
 * as a pid file naming pid 1) does not block a restart. `rcptgate sync` still writes the
 * snapshot of a running service. Real slapd, real serve processes, the real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, REPO_ROOT, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('two instances on the same data files (real slapd, real serve)', () => {
  let ldap: Slapd;
  let other: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    [ldap, other] = await Promise.all([startSlapd(), startSlapd({ ldifText: ['dn: uid=zoe,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: zoe\ncn: Zoe\nsn: Zoe\nmail: zoe@example.com\n'] })]);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11b-two-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    await other?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const answers = () => path.join(dir, 'answers');
  const snapshot = () => path.join(dir, 'snapshot');
  const writeConfig = async (name: string, server: Slapd, extra: Record<string, unknown> = {}) => {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(
      file,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [server.url], baseDN: server.baseDN, bindDN: server.serviceDN } },
        cache: { persistPath: answers() },
        ...extra,
      }),
    );
    return file;
  };
  const serve = (file: string, server: Slapd): ServeProcess => {
    const p = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: server.servicePassword });
    procs.push(p);
    return p;
  };
  const verdict = async (port: number, address: string) => ((await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
  /** The exit code, or 'still running' after 30 s (a second instance that started serves on). */
  const exitCode = (p: ServeProcess) => Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000).unref())]);
  const fatal = (p: ServeProcess) => String(p.logs.find((l) => l.level === 60)?.err && (p.logs.find((l) => l.level === 60)!.err as { message: string }).message);

  test('a second instance with the same answer file, against another directory, refuses to start naming the path and the holder', async () => {
    const first = serve(await writeConfig('first', ldap), ldap);
    const port = await listenerPort(first, 'http');
    assert.equal(await verdict(port, 'alice@example.com'), 'valid');
    const second = serve(await writeConfig('second', other), other);
    assert.equal(await exitCode(second), 78, `the second instance ran beside the first; logs: ${JSON.stringify(second.logs.slice(-3))}`);
    assert.match(fatal(second), new RegExp(`cache\\.persistPath ${answers()} is in use by another running instance \\(pid ${first.child.pid} `));
    // The first still serves, and its answers are the ones saved at its stop.
    assert.equal(await verdict(port, 'alice@example.com'), 'valid');
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.match(await readFile(answers(), 'latin1'), /alice@example\.com/);
    await assert.rejects(stat(`${answers()}.lock`), 'the lock is removed at a clean stop');
  });

  test('a lock left by SIGKILL, or a stray lock file naming pid 1, does not block a restart', async () => {
    const file = await writeConfig('first', ldap);
    const killed = serve(file, ldap);
    await listenerPort(killed, 'http');
    // The lock is taken once the listeners are up (and checked 200 ms later): killed before
    // that, there would be no lock left to test.
    for (let i = 0; i < 100 && !(await stat(`${answers()}.lock`).then((st) => st.isSocket(), () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 300));
    await killed.kill();
    assert.ok((await stat(`${answers()}.lock`)).isSocket(), 'SIGKILL leaves the lock behind');
    const restarted = serve(file, ldap);
    assert.equal(await verdict(await listenerPort(restarted, 'http'), 'alice@example.com'), 'valid');
    restarted.child.kill('SIGTERM');
    assert.equal(await restarted.exited, 0);
    // As a container's service would have written it: pid 1, which is the restarted one's own pid there.
    await rm(`${answers()}.lock`, { force: true });
    await writeFile(`${answers()}.lock`, '1\n');
    const again = serve(file, ldap);
    assert.equal(await verdict(await listenerPort(again, 'http'), 'alice@example.com'), 'valid');
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
  });

  test('the same snapshot with sync on: the second refuses; rcptgate sync still writes it beside the running service', async () => {
    const sync = { sync: { enabled: true, snapshotPath: snapshot() }, cache: { persistPath: null } };
    const file = await writeConfig('snap1', ldap, sync);
    const first = serve(file, ldap);
    const port = await listenerPort(first, 'http');
    await first.waitForLog((l) => typeof l.msg === 'string' && /full sync (done|complete)|snapshot (saved|written)/i.test(l.msg), 30_000).catch(() => undefined);
    const second = serve(await writeConfig('snap2', other, sync), other);
    assert.equal(await exitCode(second), 78, `logs: ${JSON.stringify(second.logs.slice(-3))}`);
    assert.match(fatal(second), new RegExp(`sync\\.snapshotPath ${snapshot()} is in use by another running instance \\(pid ${first.child.pid} `));
    const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'sync', '--config', file], { cwd: REPO_ROOT, env: { ...process.env, RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(cli.code, 0, cli.out);
    assert.equal(await verdict(port, 'alice@example.com'), 'valid');
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
  });

  test('a reload that points the snapshot at a file another instance writes fails and keeps the running one', async () => {
    const mine = path.join(dir, 'snapshot-mine');
    const firstFile = await writeConfig('reload1', ldap, { sync: { enabled: true, snapshotPath: mine }, cache: { persistPath: null } });
    const first = serve(firstFile, ldap);
    const port = await listenerPort(first, 'http');
    const second = serve(await writeConfig('reload2', other, { sync: { enabled: true, snapshotPath: snapshot() }, cache: { persistPath: null } }), other);
    await listenerPort(second, 'http');
    await writeConfig('reload1', ldap, { sync: { enabled: true, snapshotPath: snapshot() }, cache: { persistPath: null } });
    const seen = first.logs.length;
    first.child.kill('SIGHUP');
    const line = await first.waitForLog((l) => first.logs.indexOf(l) >= seen && typeof l.msg === 'string' && /^(configuration reloaded|reload failed)/.test(l.msg));
    assert.equal(line.msg, 'reload failed; keeping the running configuration', 'the reload took over a file another instance writes');
    assert.match((line.err as { message: string }).message, new RegExp(`sync\\.snapshotPath ${snapshot()} is in use by another running instance \\(pid ${second.child.pid} `));
    assert.equal(await verdict(port, 'alice@example.com'), 'valid');
    for (const p of [first, second]) p.child.kill('SIGTERM');
    assert.deepEqual([await first.exited, await second.exited], [0, 0]);
  });

  test('a SIGTERM right after the first answers stops the service (the start had just taken over a stale lock)', async () => {
    // The stop handler of the start was swapped for the running one's with a moment between
    // them when none was listening; a signal caught then went to the closed handle and was lost.
    const file = await writeConfig('first', ldap);
    const outcomes: Array<number | string> = [];
    for (let i = 0; i < 6; i++) {
      const p = serve(file, ldap);
      assert.equal(await verdict(await listenerPort(p, 'http'), 'alice@example.com'), 'valid');
      p.child.kill('SIGTERM');
      outcomes.push(await exitCode(p));
      await p.kill();
      // The next start takes over the lock this one leaves.
      const killed = serve(file, ldap);
      await listenerPort(killed, 'http');
      await killed.kill();
    }
    assert.deepEqual(outcomes, [0, 0, 0, 0, 0, 0]);
  });
});
