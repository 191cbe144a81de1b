/**
 * The README's first command, `npm start`, stopped as a supervisor stops it: SIGTERM to npm (a
 * container whose CMD is `npm start`, a terminal's process group aside). npm passes the signal
 * to the shell running the script, which died of it and left the service running without it:
 * no drain, the answers given not saved, the listener still open, killed later without a word.
 * The script now execs the service, so the signal reaches it. Real npm, the real build.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../helpers/process.js';

/** Every process below `pid` (the shell npm runs the script in, the service). */
function descendants(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  } catch {
    return []; // pgrep exits 1 when there is none
  }
  const children = out.split('\n').filter(Boolean).map(Number);
  return children.flatMap((c) => [c, ...descendants(c)]);
}

/** Whether something accepts connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('npm start, stopped with SIGTERM', () => {
  let dir: string | undefined;
  let below: number[] = [];
  after(async () => {
    // Before the fix the service outlived npm: do not leave it behind.
    for (const pid of below) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the service drains and stops with npm', { timeout: 180_000 }, async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12m-npm-'));
    const config = path.join(dir, 'rcptgate.json');
    await writeFile(config, JSON.stringify({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, log: { level: 'info' } }));
    const npm = spawn('npm', ['start'], { cwd: REPO_ROOT, env: { ...process.env, RCPTGATE_CONFIG: config }, stdio: ['ignore', 'pipe', 'pipe'] });
    npm.once('error', (err) => assert.fail(`npm could not be run: ${err.message}`));
    const lines: Array<Record<string, unknown>> = [];
    let out = '';
    npm.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    const npmExited = once(npm, 'exit');
    const deadline = Date.now() + 150_000;
    let listening: Record<string, unknown> | undefined;
    while (!(listening = lines.find((l) => l.msg === 'listening' && l.frontend === 'http')) && Date.now() < deadline) await sleep(100);
    assert.ok(listening, 'npm start served (the build and the start took under 150 s)');
    below = descendants(npm.pid!);
    const port = Number(String(listening.address).split(':').pop());
    assert.equal(await accepts(port), true);

    npm.kill('SIGTERM');
    await npmExited;
    // The service holds npm's stdout open while it lives: stop reading so this file can end.
    npm.stdout!.destroy();
    npm.stderr!.destroy();
    let open = true;
    for (let i = 0; i < 150 && open; i++) {
      await sleep(100);
      open = await accepts(port);
    }
    assert.equal(open, false, 'the listener closed after npm was told to stop (the service did not outlive it)');
    assert.ok(lines.some((l) => l.msg === 'draining and stopping' && l.signal === 'SIGTERM'), 'the service drained on the signal');
  });
});
