/**
 * Two instances starting at the same moment over a stale data file lock (the previous one was
 * killed): each finds nothing listening at FILE.lock, checks that the socket file is still the
 * dead one's, and unlinks it. The later unlink could remove the lock the other had just bound, so
 * both ran and wrote the same file. The window is one file system call wide, too narrow for two
 * `rcptgate serve` processes to meet often enough for a test, so the lock module is driven
 * directly: real Unix sockets, a real stale socket file, the second start staggered by a few
 * turns of the event loop (where the race was seen in about 1 of 12 tries). Exactly one of the
 * two must hold the lock, and the loser's failed start must not remove the winner's lock.
 */
import assert from 'node:assert/strict';
import { link, mkdtemp, rename, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lockDataFiles, type DataLock } from '../../src/app/data-lock.js';
import { silentLogger } from '../../src/log.js';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A socket file nobody listens on, as a killed instance leaves it (close unlinks, so a link keeps it). */
async function staleLock(path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  await link(path, `${path}.keep`);
  await new Promise((resolve) => server.close(resolve));
  await rename(`${path}.keep`, path);
}

/** Whether something answers at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    server.listen(path, () => server.close(() => resolve(false)));
  });
}

test('two instances taking over one stale lock at the same moment: one wins, the other refuses', async () => {
  dir = await mkdtemp(join(tmpdir(), 'rcptgate-lock-race-'));
  const logger = silentLogger();
  const outcomes: string[] = [];
  for (let i = 0; i < 96; i++) {
    const file = join(dir, `answers-${i}.json`);
    await staleLock(`${file}.lock`);
    const take = () => lockDataFiles([{ key: 'cache.persistPath', path: file }], logger).then((l): DataLock | null => l, () => null);
    const first = take();
    const second = (async () => {
      for (let turn = 0; turn < 16 + (i % 12); turn++) await new Promise((resolve) => setImmediate(resolve));
      return take();
    })();
    const locks = (await Promise.all([first, second])).filter((l): l is DataLock => l !== null);
    if (locks.length !== 1) outcomes.push(`try ${i}: ${locks.length} instances hold the lock`);
    // The winner's lock is in place after the loser gave up (bind refused: someone holds it).
    else if (!(await answers(`${file}.lock`))) outcomes.push(`try ${i}: the winner's lock was removed`);
    for (const l of locks) await l.release();
  }
  assert.deepEqual(outcomes, []);
});
