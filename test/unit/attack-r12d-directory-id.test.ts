/**
 * The base entry's identifier a snapshot file records (identity.ts): written and read back with
 * the header; a file listed from another directory is refused only when the directory answering
 * now tells another identifier, never when it cannot tell (down, hung, no read right) or when
 * the file predates the identifier.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSnapshotStore, writeSnapshot } from '../../src/snapshot/file.js';
import { checkDirectoryId, directoryIdWithin } from '../../src/snapshot/identity.js';

const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const RECORD = { dn: 'uid=alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com'] };
const answering = (id: string | null) => ({ directoryId: () => Promise.resolve(id) });

let dir: string;
before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-dirid-'))));
after(async () => rm(dir, { recursive: true, force: true }));

describe('the directory identifier of a snapshot', () => {
  test('is written to the header and read back; absent when unknown', async () => {
    const file = path.join(dir, 'with-id');
    await writeSnapshot(file, SOURCE, Date.now(), [RECORD], Date.now(), 'b5a1c6c4-0000-1000-8000-000000000001');
    assert.equal((await readSnapshotStore(file, SOURCE, Infinity)).header.directoryId, 'b5a1c6c4-0000-1000-8000-000000000001');
    const without = path.join(dir, 'without-id');
    await writeSnapshot(without, SOURCE, Date.now(), [RECORD]);
    assert.equal((await readSnapshotStore(without, SOURCE, Infinity)).header.directoryId, undefined);
  });

  test('a header whose identifier is not text is refused', async () => {
    const file = path.join(dir, 'bad-id');
    await writeSnapshot(file, SOURCE, Date.now(), [RECORD], Date.now(), 'x');
    const text = (await readFile(file)).toString('latin1').replace('"directoryId":"x"', '"directoryId":123');
    await writeFile(file, Buffer.from(text, 'latin1'));
    await assert.rejects(readSnapshotStore(file, SOURCE, Infinity), /incomplete header/);
  });

  test('refuses only a different identifier told by the directory answering now', async () => {
    const told = (id: string | null) => directoryIdWithin(answering(id), undefined, 1000);
    await assert.rejects(checkDirectoryId(told('other'), 'mine'), /another directory/);
    await checkDirectoryId(told('mine'), 'mine');
    await checkDirectoryId(told(null), 'mine');
    await checkDirectoryId(told('other'), undefined);
    await checkDirectoryId(directoryIdWithin(null, undefined, 1000), 'mine');
    await checkDirectoryId(directoryIdWithin({ directoryId: () => Promise.reject(new Error('down')) }, undefined, 1000), 'mine');
    const t0 = performance.now();
    await checkDirectoryId(directoryIdWithin({ directoryId: () => new Promise<string>(() => undefined) }, undefined, 200), 'mine');
    assert.ok(performance.now() - t0 < 2000, 'a hung directory costs the timeout, not more');
    let refused = 0;
    await assert.rejects(checkDirectoryId(told('other'), 'mine', () => refused++));
    assert.equal(refused, 1);
  });
});
