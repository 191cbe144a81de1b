/**
 * The data file lock (a Unix socket beside cache.persistPath) of a running instance that a
 * second one cannot connect to: the socket's permissions do not let it (another user, a lock
 * left with mode 000 by a restore or a careless chmod -R). Any failed connect was taken for a
 * dead holder: the second instance removed the running one's lock and ran, and both saved
 * answers into the same file. Only "nobody listens" (ECONNREFUSED) means dead; anything else
 * now refuses the start (78), the running instance and its lock untouched.
 * Real CLI twice; the second runs as root without CAP_DAC_OVERRIDE (setpriv), so the kernel
 * checks the socket's mode as it would for another user.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServeProcess } from '../helpers/process.js';
import { freePort } from '../helpers/ports.js';
import { startDistServe } from '../helpers/r13l-dist-serve.js';
import { findTool } from '../helpers/slapd.js';

describe('a running instance whose lock the next one cannot connect to (real CLI twice)', () => {
  let dir: string;
  const running: ServeProcess[] = [];
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-lockperm-'));
  });
  after(async () => {
    for (const p of running) await p.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const config = async (name: string, answers: string) => {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(file, JSON.stringify({ listen: { http: `127.0.0.1:${await freePort()}`, socketmap: null, policy: null, milter: null, metrics: null }, cache: { persistPath: answers } }));
    return file;
  };

  test('the second refuses to start; the first keeps its lock', async () => {
    const setpriv = findTool('setpriv');
    assert.ok(setpriv, 'setpriv (util-linux) is required: it drops CAP_DAC_OVERRIDE');
    assert.equal(process.getuid?.(), 0, 'runs as root, so that setpriv can drop the capability');
    const answers = path.join(dir, 'answers');
    const first = startDistServe(['--config', await config('first', answers)]);
    running.push(first);
    await first.waitForLog((l) => l.msg === 'listening', 30_000);
    const lock = `${answers}.lock`;
    for (let i = 0; i < 100 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(lstatSync(lock).isSocket(), 'the first instance holds its lock');
    const ino = lstatSync(lock).ino;
    chmodSync(lock, 0o000);

    const second = startDistServe(['--config', await config('second', answers)], {}, { prefix: [setpriv, '--bounding-set=-dac_override,-dac_read_search', '--'] });
    running.push(second);
    const outcome = await Promise.race([second.exited.then((c) => `exit ${c}`), second.waitForLog((l) => l.msg === 'listening', 30_000).then(() => new Promise<string>((r) => setTimeout(() => r('serving'), 1500)))]);
    const code = second.child.exitCode;
    assert.equal(code === null ? 'serving' : `exit ${code}`, 'exit 78', `${outcome}; logs: ${JSON.stringify(second.logs.filter((l) => (l.level as number) >= 40))}`);
    assert.ok(second.logs.some((l) => /may be in use by another instance.*could not be asked: EACCES/.test(String((l.err as { message?: string } | undefined)?.message ?? l.msg))), JSON.stringify(second.logs));
    assert.equal(lstatSync(lock).ino, ino, "the first instance's lock is still there");
    assert.equal(first.child.exitCode, null, 'the first instance runs on');
  });
});
