/**
 * A restart while the snapshot or the answer file is being written: a process killed mid-write
 * (SIGKILL, the OOM killer during a full sync) leaves its temp file beside the real one, and a
 * crash loop left one more partial copy per crash until the disk was full. The leftovers here
 * are written by hand exactly as a killed writer leaves them (same name, partial contents):
 * timing a real kill into the write window is not reliable.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSnapshot, writeSnapshot } from '../../src/snapshot/file.js';

describe('temp files left by a writer killed mid-write', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-leftovers-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('are removed by the next write, except a live writer\'s', async () => {
    const file = path.join(dir, 'recipients.snapshot');
    const records = [{ dn: 'uid=a,dc=x', canonical: 'a@example.com', addresses: ['a@example.com'] }];
    await writeSnapshot(file, 'src', Date.now(), records);
    // A live process that is not us: a `rcptgate sync` writing the same file right now.
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const dead = 2 ** 22 + 12345; // above the largest pid_max Linux allows (2^22): no such process
      const leftovers = [`.recipients.snapshot.${dead}.0badf00d.tmp`, `.recipients.snapshot.${process.pid}.deadbeef.tmp`];
      const live = `.recipients.snapshot.${other.pid}.cafebabe.tmp`;
      for (const name of [...leftovers, live]) await writeFile(path.join(dir, name), 'rcptgate-snapshot 3\n{"partial');
      await writeFile(path.join(dir, '.other.file.1.x.tmp'), 'not ours');

      await writeSnapshot(file, 'src', Date.now(), records);
      const left = (await readdir(dir)).sort();
      assert.deepEqual(left, ['.other.file.1.x.tmp', live, 'recipients.snapshot'].sort(), 'the dead writers\' temp files are gone, the live one\'s and other files stay');
      assert.equal((await readSnapshot(file, 'src')).records.length, 1);
    } finally {
      other.kill('SIGKILL');
    }
  });
});
