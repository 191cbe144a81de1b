/**
 * A signal that reaches check, sync or config check while their modules load is held
 * (early-signals.ts) and handed on once the command runs: to the command's handler, else by
 * Node's default. Loading runs without turning the event loop, so the kernel has given such a
 * signal to Node but Node has not yet given it to the holding handler; where the command has no
 * handler of its own (SIGHUP for check and sync, SIGTERM for config check), the handle was closed
 * with it pending and the signal was lost: check and sync ran on to their end after a hang-up,
 * config check printed its YAML and exited 0 after SIGTERM. Now each ends by that signal.
 * The built CLI (npm run build first; through a loader, its own SIGTERM handler would answer); a directory that
 * accepts and never answers keeps check and sync running for as long as the test needs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { caughtSignals, DIST_MAIN } from '../helpers/r13l-dist-serve.js';

const SIGHUP_BIT = 1n;

interface Ended { code: number | null; signal: NodeJS.Signals | null; ms: number; stdout: string }

function isCli(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(DIST_MAIN);
  } catch {
    return false;
  }
}

/**
 * Runs the CLI with `args` and sends `signal` as soon as the holding handlers are in place: SIGHUP
 * caught (SigCgt; Node itself catches SIGTERM and SIGINT from its start, so those bits say nothing).
 */
async function signalWhileLoading(args: string[], signal: NodeJS.Signals): Promise<Ended> {
  assert.ok(existsSync(DIST_MAIN), `${DIST_MAIN} is missing: run npm run build first`);
  const child = spawn(process.execPath, [DIST_MAIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.resume();
  const ended = new Promise<Omit<Ended, 'ms' | 'stdout'>>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
  const deadline = Date.now() + 30_000;
  // Until exec, /proc shows the forked test runner and its handlers: wait for the CLI's own.
  while (!isCli(child.pid!) || (caughtSignals(child.pid!) & SIGHUP_BIT) === 0n) {
    assert.equal(child.exitCode, null, 'exited before its handlers were in place');
    assert.ok(Date.now() < deadline, 'the CLI never caught SIGHUP');
    await new Promise((r) => setTimeout(r, 1));
  }
  const sent = Date.now();
  child.kill(signal);
  const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
  const end = await ended;
  clearTimeout(killer);
  return { ...end, ms: Date.now() - sent, stdout };
}

describe('a signal without a handler of the command, sent while the CLI loads (real CLI)', () => {
  let dir: string;
  let silent: net.Server;
  let config: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-held-'));
    silent = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `ldap://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      domains: ['example.com'],
      sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot.bin') },
      directory: { kind: 'ldap', ldap: { urls: [url], baseDN: 'dc=example,dc=com', timeout: '20s' } },
    }));
  });
  after(async () => {
    silent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // Several tries each: the signal lands at a different point of the loading each time.
  for (const [name, args, signal] of [
    ['check, SIGHUP (a closed terminal)', ['check', 'someone@example.com'], 'SIGHUP'],
    ['sync, SIGHUP (a closed terminal)', ['sync'], 'SIGHUP'],
    ['config check, SIGTERM', ['config', 'check'], 'SIGTERM'],
  ] as const) {
    test(`${name}: ends by that signal, every time`, async () => {
      for (let i = 0; i < 4; i++) {
        const r = await signalWhileLoading([...args, '--config', config], signal);
        assert.deepEqual({ try: i, code: r.code, signal: r.signal }, { try: i, code: null, signal }, `stdout: ${r.stdout.slice(0, 200)}`);
        assert.ok(r.ms < 15_000, `took ${r.ms} ms after the signal`);
      }
    });
  }
});
