/**
 * A snapshot file of format 1 (JSON lines, the 0.1 release) larger than the longest string V8
 * makes (2^29 - 24 characters, about 512 MiB: some 5.5 million one-address entries, fewer with
 * aliases). Its body was decoded into one string before the lines were split: the decode threw,
 * and the file was refused as corrupt, so an upgrade of a large site lost its snapshot (every
 * recipient asked live; deferred if the directory was down). Real files on disk; no directory.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { constants } from 'node:buffer';
import { readSnapshotStore } from '../../src/snapshot/file.js';
import { SNAPSHOT_MAGIC_V1 } from '../../src/snapshot/file-v1.js';

const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const ENTRIES = 5_800_000;
const BATCH = 50_000;

/** The body in chunks of BATCH lines, the same every time. */
function* body(): Generator<Buffer> {
  for (let i = 0; i < ENTRIES; i += BATCH) {
    let text = '';
    for (let k = i; k < Math.min(ENTRIES, i + BATCH); k++) text += `${JSON.stringify([`uid=user${k},ou=people,dc=example,dc=com`, `user${k}@example.com`, [`user${k}@example.com`]])}\n`;
    yield Buffer.from(text);
  }
}

let dir: string;
before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-v1-'))));
after(async () => rm(dir, { recursive: true, force: true }));

describe('a format-1 snapshot larger than a string', () => {
  test(`${ENTRIES} entries are read`, async () => {
    const hash = createHash('sha256');
    for (const b of body()) hash.update(b);
    const file = path.join(dir, 'snapshot');
    const out = createWriteStream(file);
    const header = { createdAt: Date.now(), fullAt: Date.now(), source: SOURCE, entries: ENTRIES, addresses: ENTRIES, sha256: hash.digest('hex') };
    out.write(`${SNAPSHOT_MAGIC_V1}\n${JSON.stringify(header)}\n`);
    for (const b of body()) if (!out.write(b)) await new Promise<void>((r) => out.once('drain', () => r()));
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    assert.ok((await stat(file)).size > constants.MAX_STRING_LENGTH, 'the body is longer than a string can be');

    const { store } = await readSnapshotStore(file, SOURCE, Infinity);
    assert.equal(store.entries, ENTRIES);
    assert.equal(store.get('user0@example.com'), 'user0@example.com');
    assert.equal(store.get(`user${ENTRIES - 1}@example.com`), `user${ENTRIES - 1}@example.com`);
    assert.equal(store.get(`user${ENTRIES}@example.com`), undefined);
  });
});
