/**
 * A snapshot file written before final-sigma folding, read by this release: its keys hold ς where
 * lookups now ask with σ, so a user stored as οδος@ was a miss in the snapshot, answered unknown
 * (550) with sync.confirmMisses off until the next full sync (an interval away after a restart,
 * since the file's full sync was recent). The keys of such a file are made again at load.
 * A file as the previous release wrote it (helpers/r12g-old-snapshot.ts), no server needed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseAddress } from '../../src/recipient/address.js';
import { readSnapshotStore, writeSnapshot } from '../../src/snapshot/file.js';
import { OLD_SNAPSHOT_BASE64, OLD_SNAPSHOT_SOURCE } from '../helpers/r12g-old-snapshot.js';

const key = (a: string) => {
  const p = parseAddress(a);
  assert.ok(p.ok);
  return p.value.address;
};

test('a snapshot file of the previous release finds its Greek users by every spelling a lookup folds to one key', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12g-oldsnap-'));
  try {
    const file = path.join(dir, 'snapshot.bin');
    await writeFile(file, Buffer.from(OLD_SNAPSHOT_BASE64, 'base64'));
    const { store } = await readSnapshotStore(file, OLD_SNAPSHOT_SOURCE, Infinity);
    const asked = ['οδος@example.com', 'ΟΔΟΣ@example.com', 'οδοσ@example.com', 'γιώργος@example.com', 'ΓΙΏΡΓΟΣ@example.com', 'alice@example.com'];
    const missed = asked.filter((a) => store.get(key(a)) === undefined);
    assert.deepEqual(missed, [], 'every spelling found');
    assert.equal(store.get(key('ΟΔΟΣ@example.com')), 'οδος@example.com', 'the canonical address as the directory spells it');
    assert.equal(store.get(key('nobody@example.com')), undefined);
    assert.deepEqual(store.holders('οδος@example.com'), ['uid=odos,ou=people,dc=example,dc=com']);

    // Written again by this release and read back: the same answers, no second rekeying needed.
    await writeSnapshot(file, OLD_SNAPSHOT_SOURCE, Date.now(), store);
    const again = (await readSnapshotStore(file, OLD_SNAPSHOT_SOURCE, Infinity)).store;
    assert.deepEqual(asked.filter((a) => again.get(key(a)) === undefined), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
