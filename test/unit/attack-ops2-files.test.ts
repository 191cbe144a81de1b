/**
 * The snapshot and answer-file paths holding something other than a file: a FIFO, a device
 * (`cache.persistPath: /dev/null` "to switch it off"), a directory. Opening a FIFO for reading
 * waits for a writer, so the start hung before any listener opened, with no log line; and the
 * atomic write's rename would replace a device node such as /dev/null with our file (as root).
 * Each is now refused: by config check, and at run time if the path changes after the start.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/errors.js';
import { AnswerCache } from '../../src/recipient/answer-cache.js';
import { loadAnswers, saveAnswers } from '../../src/snapshot/answer-file.js';
import { readSnapshotStore, writeSnapshot } from '../../src/snapshot/file.js';
import { requireTools } from '../helpers/slapd.js';

const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const RECORDS = [{ dn: 'uid=alice,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com'] }];

let dir: string;
const fifos: string[] = [];
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-files-'));
});
after(async () => {
  // A reader still blocked in open() (the failure this file guards against) holds a thread of
  // libuv's pool: opening the write end lets it go, so the test process can exit.
  for (const f of fifos) await open(f, constants.O_WRONLY | constants.O_NONBLOCK).then((fh) => fh.close(), () => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function fifo(name: string): Promise<string> {
  const { mkfifo } = requireTools('mkfifo');
  const file = path.join(dir, name);
  execFileSync(mkfifo!, [file]);
  fifos.push(file);
  return file;
}

/** Settles within `ms` or fails: a read that waits for a FIFO's writer never settles. */
function within<T>(p: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('a snapshot or answer file path that is no regular file', () => {
  test('a FIFO at sync.snapshotPath is refused at once instead of waiting for a writer', async () => {
    const file = await fifo('snapshot');
    await assert.rejects(within(readSnapshotStore(file, SOURCE, Infinity)), /rejected: cannot read it \(not a regular file: a FIFO\)/);
  });

  test('a FIFO at cache.persistPath is refused at once instead of waiting for a writer', async () => {
    const file = await fifo('answers');
    await assert.rejects(within(loadAnswers(file, SOURCE, new AnswerCache(10), Date.now(), 3_600_000)), /not a regular file: a FIFO/);
  });

  test('a device is read as nothing, not endlessly: /dev/zero at cache.persistPath', async () => {
    await assert.rejects(within(loadAnswers('/dev/zero', SOURCE, new AnswerCache(10), Date.now(), 3_600_000)), /not a regular file: a device/);
  });

  test('a save does not replace a FIFO, device or directory at the path, and leaves no temp file', async () => {
    const sub = path.join(dir, 'occupied');
    await mkdir(sub);
    const { mkfifo } = requireTools('mkfifo');
    execFileSync(mkfifo!, [path.join(sub, 'answers')]);
    fifos.push(path.join(sub, 'answers'));
    const cache = new AnswerCache(10);
    cache.set('alice@example.com', { canonical: 'alice@example.com', dn: 'uid=alice,dc=example,dc=com' }, Date.now() + 60_000);
    await assert.rejects(saveAnswers(path.join(sub, 'answers'), SOURCE, cache, Date.now(), 3_600_000), /not a regular file: a FIFO/);
    assert.ok((await stat(path.join(sub, 'answers'))).isFIFO(), 'the FIFO is still there');
    await mkdir(path.join(sub, 'snapshot'));
    await assert.rejects(writeSnapshot(path.join(sub, 'snapshot'), SOURCE, 1, RECORDS), /not a regular file: a directory/);
    assert.deepEqual((await readdir(sub)).sort(), ['answers', 'snapshot']);
  });

  test('a symbolic link is followed: the file it points to is replaced, the link stays', async () => {
    // An operator who keeps the snapshot on a larger volume through a link: replacing the link
    // with a file would put every later snapshot on the small one, without a word.
    const volume = path.join(dir, 'volume');
    await mkdir(volume);
    const target = path.join(volume, 'snapshot');
    await writeSnapshot(target, SOURCE, 1, RECORDS);
    const link = path.join(dir, 'link-snapshot');
    await symlink(target, link);
    assert.equal((await readSnapshotStore(link, SOURCE, Infinity)).store.get('alice@example.com'), 'alice@example.com');
    await writeSnapshot(link, SOURCE, 2, RECORDS);
    assert.ok((await lstat(link)).isSymbolicLink(), 'the link was replaced by a file');
    assert.equal((await readSnapshotStore(target, SOURCE, Infinity)).header.createdAt, 2);
    assert.deepEqual(await readdir(volume), ['snapshot']);
    // A link to a file not yet written: the first save creates it where the link points.
    const later = path.join(dir, 'link-to-new');
    await symlink(path.join(volume, 'answers'), later);
    const cache = new AnswerCache(10);
    cache.set('alice@example.com', { canonical: 'alice@example.com', dn: 'uid=alice,dc=example,dc=com' }, Date.now() + 60_000);
    await saveAnswers(later, SOURCE, cache, Date.now(), 3_600_000);
    assert.ok((await lstat(later)).isSymbolicLink());
    assert.deepEqual((await readdir(volume)).sort(), ['answers', 'snapshot']);
  });

  test('config check refuses such a path for sync.snapshotPath and cache.persistPath', async () => {
    const pipe = await fifo('config-fifo');
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'] } },
      sync: { enabled: true, snapshotPath: pipe },
      cache: { persistPath: '/dev/null' },
    });
    try {
      resolveConfig(config, {});
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      const byKey = Object.fromEntries(err.issues.map((i) => [i.path, i.message]));
      assert.match(byKey['sync.snapshotPath'] ?? '', /is a FIFO, not a regular file/);
      assert.match(byKey['cache.persistPath'] ?? '', /\/dev\/null is a device, not a regular file/);
    }
    // A link is checked where it points: here into a directory that does not exist.
    const dangling = path.join(dir, 'dangling-link');
    await symlink(path.join(dir, 'no-such-volume', 'snapshot'), dangling);
    try {
      resolveConfig(validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'] } }, sync: { enabled: true, snapshotPath: dangling } }), {});
      assert.fail('accepted a link into a missing directory');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.issues[0]!.message, /no-such-volume/);
    }
    await writeFile(path.join(dir, 'plain'), '');
    assert.doesNotThrow(() =>
      resolveConfig(validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'] } }, cache: { persistPath: path.join(dir, 'plain') } }), {}),
    );
  });
});
