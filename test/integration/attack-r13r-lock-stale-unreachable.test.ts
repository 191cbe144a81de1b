/**
 * The data file lock (a Unix socket beside cache.persistPath) left behind by an instance killed
 * with SIGKILL (or by a host crash), whose mode or owner then changed (a restore, a careless
 * chmod -R, the service now run as another user): the next start cannot connect to it, so it
 * cannot tell a running holder from a dead one, and refuses to start (78), which is right. But
 * its message said the file "is in use by another running instance" and to give each instance
 * its own path: the operator looked for an instance that does not exist, and the service stayed
 * down. It now says the holder could not be asked, why, and to remove the lock if no instance
 * runs. Real CLI, run as root without CAP_DAC_OVERRIDE (setpriv) so the socket's mode applies;
 * the stale lock is a real socket whose listening process was SIGKILLed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServeProcess } from '../helpers/process.js';
import { freePort } from '../helpers/ports.js';
import { startDistServe } from '../helpers/r13l-dist-serve.js';
import { findTool } from '../helpers/slapd.js';

describe('a stale lock of a SIGKILLed instance that the next start cannot connect to (real CLI)', () => {
  let dir: string;
  const running: ServeProcess[] = [];
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-stalelock-'));
  });
  after(async () => {
    for (const p of running) await p.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('refuses to start (78), saying the holder could not be asked and to remove the lock if no instance runs', async () => {
    const setpriv = findTool('setpriv');
    assert.ok(setpriv, 'setpriv (util-linux) is required: it drops CAP_DAC_OVERRIDE');
    assert.equal(process.getuid?.(), 0, 'runs as root, so that setpriv can drop the capability');
    const answers = path.join(dir, 'answers');
    const lock = `${answers}.lock`;
    // A process listening on the lock path, killed so that it cannot remove it.
    const holder = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(lock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    assert.ok(existsSync(lock) && lstatSync(lock).isSocket(), 'the killed process left its socket');
    chmodSync(lock, 0o000);

    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({ listen: { http: `127.0.0.1:${await freePort()}`, socketmap: null, policy: null, milter: null, metrics: null }, cache: { persistPath: answers } }));
    const serve = startDistServe(['--config', file], {}, { prefix: [setpriv, '--bounding-set=-dac_override,-dac_read_search', '--'] });
    running.push(serve);
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000))]);
    const messages = serve.logs.map((l) => String((l.err as { message?: string } | undefined)?.message ?? l.msg));
    assert.equal(code, 78, JSON.stringify(serve.logs));
    const said = messages.find((m) => m.includes(lock)) ?? '';
    assert.doesNotMatch(said, /is in use by another running instance/, 'no running instance is asserted');
    assert.match(said, /could not be asked: EACCES/);
    assert.match(said, new RegExp(`if no other instance runs.*remove ${lock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });
});
