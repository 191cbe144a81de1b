/**
 * A restart while the snapshot or the answer file is being written: a process killed mid-write
 * (SIGKILL, the OOM killer during a full sync) leaves its temp file beside the real one, and a
 * crash loop left one more partial copy per crash until the disk was full. The leftovers here
 * are written by hand exactly as a killed writer leaves them (same name, partial contents, last
 * written minutes ago): timing a real kill into the write window is not reliable.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
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

  test('are removed by the next write; a temp file still being written stays', async () => {
    const file = path.join(dir, 'recipients.snapshot');
    const records = [{ dn: 'uid=a,dc=x', canonical: 'a@example.com', addresses: ['a@example.com'] }];
    await writeSnapshot(file, 'src', Date.now(), records);
    const leftovers = ['.recipients.snapshot.1.0badf00d.tmp', `.recipients.snapshot.${process.pid}.deadbeef.tmp`];
    // Being written right now, by a `rcptgate sync` beside the server.
    const live = '.recipients.snapshot.7.cafebabe.tmp';
    const minutesAgo = new Date(Date.now() - 5 * 60_000);
    for (const name of [...leftovers, live]) await writeFile(path.join(dir, name), 'rcptgate-snapshot 3\n{"partial');
    for (const name of leftovers) await utimes(path.join(dir, name), minutesAgo, minutesAgo);
    await writeFile(path.join(dir, '.other.file.1.x.tmp'), 'not ours');
    await utimes(path.join(dir, '.other.file.1.x.tmp'), minutesAgo, minutesAgo);

    await writeSnapshot(file, 'src', Date.now(), records);
    const left = (await readdir(dir)).sort();
    assert.deepEqual(left, ['.other.file.1.x.tmp', live, 'recipients.snapshot'].sort(), 'the abandoned temp files are gone; the live one and other files stay');
    assert.equal((await readSnapshot(file, 'src')).records.length, 1);
  });
});
