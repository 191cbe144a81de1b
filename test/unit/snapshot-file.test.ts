import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { ErrorCodes, RcptgateError } from '../../src/errors.js';
import { readSnapshot, readSnapshotStore, SNAPSHOT_MAGIC, writeSnapshot } from '../../src/snapshot/file.js';
import { SNAPSHOT_MAGIC_V1 } from '../../src/snapshot/file-v1.js';
import { SnapshotStore } from '../../src/snapshot/store.js';

const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const RECORDS: DirectoryRecord[] = [
  { dn: 'uid=alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com', 'ally@example.com'] },
  { dn: 'uid=bob,ou=people,dc=example,dc=com', canonical: 'Bob@example.com', addresses: ['bob@example.com'] },
  { dn: 'uid=jürgen,ou=people,dc=example,dc=com', canonical: 'jürgen@xn--bcher-kva.example', addresses: ['jürgen@xn--bcher-kva.example'] },
];

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapfile-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fresh snapshot file in its own sub-directory. */
async function written(name: string): Promise<string> {
  const sub = path.join(dir, name);
  await mkdir(sub);
  const file = path.join(sub, 'snapshot');
  await writeSnapshot(file, SOURCE, 1_700_000_000_000, RECORDS);
  return file;
}

async function rejectsWith(file: string, reason: RegExp, source = SOURCE): Promise<void> {
  await assert.rejects(readSnapshot(file, source), (err: unknown) => {
    assert.ok(err instanceof RcptgateError, `expected RcptgateError, got ${String(err)}`);
    assert.equal(err.code, ErrorCodes.SNAPSHOT_INVALID);
    assert.ok(err.message.includes(file), `message names the file: ${err.message}`);
    assert.match(err.message, reason);
    return true;
  });
}

describe('snapshot file', () => {
  test('round-trips every record, header counts and creation time', async () => {
    const file = await written('roundtrip');
    const { header, records } = await readSnapshot(file, SOURCE);
    assert.deepEqual(records, RECORDS);
    assert.equal(header.entries, 3);
    assert.equal(header.addresses, 4);
    assert.equal(header.createdAt, 1_700_000_000_000);
    assert.equal(header.source, SOURCE);
    assert.ok(header.crc32 && header.crc32.length >= 5 && header.crc32.every((c) => Number.isInteger(c) && c >= 0 && c <= 0xffffffff), 'one CRC-32 per section');
    assert.equal(header.fullAt, 1_700_000_000_000, 'a full sync by default');
  });

  test('keeps the time of the last full sync apart from the creation time', async () => {
    const sub = path.join(dir, 'fullat');
    await mkdir(sub);
    const file = path.join(sub, 'snapshot');
    await writeSnapshot(file, SOURCE, 2_000, RECORDS, 1_000);
    const { header } = await readSnapshot(file, SOURCE);
    assert.deepEqual([header.createdAt, header.fullAt], [2_000, 1_000]);
  });

  test('round-trips an empty record list', async () => {
    const sub = path.join(dir, 'empty');
    await mkdir(sub);
    const file = path.join(sub, 'snapshot');
    await writeSnapshot(file, SOURCE, 5, []);
    const { header, records } = await readSnapshot(file, SOURCE);
    assert.deepEqual(records, []);
    assert.equal(header.entries, 0);
  });

  test('is readable by its owner only', async () => {
    const file = await written('mode');
    const { stat } = await import('node:fs/promises');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  test('rejects a file with one flipped byte in the body as corrupt', async () => {
    const file = await written('flipped');
    const buf = await readFile(file);
    const bodyStart = buf.indexOf(0x0a, buf.indexOf(0x0a) + 1) + 1;
    const at = bodyStart + 10;
    buf[at] = buf[at]! ^ 0x01;
    await writeFile(file, buf);
    await rejectsWith(file, /checksum mismatch/);
  });

  test('rejects a file with a flipped byte in its first line as not a snapshot', async () => {
    const file = await written('flipped-magic');
    const buf = await readFile(file);
    buf[0] = buf[0]! ^ 0x20;
    await writeFile(file, buf);
    await rejectsWith(file, /not an rcptgate snapshot/);
  });

  test('rejects a truncated file', async () => {
    const file = await written('truncated');
    const { size } = await (await import('node:fs/promises')).stat(file);
    await truncate(file, size - 7);
    await rejectsWith(file, /truncated or corrupt/);
  });

  test('rejects a file cut inside its header', async () => {
    const file = await written('truncated-header');
    await truncate(file, SNAPSHOT_MAGIC.length + 12);
    await rejectsWith(file, /not an rcptgate snapshot/);
  });

  test('rejects a file written for another directory and names it', async () => {
    const file = await written('foreign');
    await rejectsWith(file, /another directory \(ldap\|openldap\|dc=example,dc=com/, 'ldap|openldap|dc=other,dc=org|sub|');
  });

  test('rejects garbage', async () => {
    const file = path.join(dir, 'garbage');
    await writeFile(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    await rejectsWith(file, /not an rcptgate snapshot/);
  });

  test('rejects an empty file', async () => {
    const file = path.join(dir, 'zero');
    await writeFile(file, '');
    await rejectsWith(file, /not an rcptgate snapshot/);
  });

  test('rejects an unreadable header line', async () => {
    const file = path.join(dir, 'badheader');
    await writeFile(file, `${SNAPSHOT_MAGIC}\n{not json\n`);
    await rejectsWith(file, /unreadable header/);
  });

  test('rejects a header with missing fields', async () => {
    const file = path.join(dir, 'halfheader');
    await writeFile(file, `${SNAPSHOT_MAGIC}\n{"source":"${SOURCE}"}\n`);
    await rejectsWith(file, /incomplete header/);
  });

  test('rejects a checksummed body whose index names an entry that is not there', async () => {
    // Consistent checksums, inconsistent arrays: only a buggy or hostile writer produces this.
    const { crc32 } = await import('node:zlib');
    const file = await written('badindex');
    const buf = await readFile(file);
    const nl1 = buf.indexOf(0x0a);
    const nl2 = buf.indexOf(0x0a, nl1 + 1);
    const header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as { crc32: number[]; layout: { meta: number; offsets: number } };
    const body = Buffer.from(buf.subarray(nl2 + 1));
    // The first entry's record offset now points far past the data.
    body.writeUInt32LE(0x05000000, header.layout.meta);
    header.crc32[1] = crc32(body.subarray(header.layout.meta, header.layout.meta + header.layout.offsets));
    await writeFile(file, Buffer.concat([Buffer.from(`${SNAPSHOT_MAGIC}\n${JSON.stringify(header)}\n`), body]));
    await rejectsWith(file, /inconsistent contents \(entry 0 lies outside the data\)/);
  });

  test('rejects a checksummed DN index that names a removed entry', async () => {
    const { crc32 } = await import('node:zlib');
    const sub = path.join(dir, 'freeid');
    await mkdir(sub);
    const file = path.join(sub, 'snapshot');
    const store = SnapshotStore.from(RECORDS, 1, Infinity);
    store.remove(RECORDS[0]!.dn); // entry id 0 is free now
    await writeSnapshot(file, SOURCE, 1, store);
    const buf = await readFile(file);
    const nl1 = buf.indexOf(0x0a);
    const nl2 = buf.indexOf(0x0a, nl1 + 1);
    const header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as { crc32: number[]; layout: { meta: number; offsets: number; byAddress: number; byDn: number } };
    const body = Buffer.from(buf.subarray(nl2 + 1));
    const at = header.layout.meta + header.layout.offsets + header.layout.byAddress;
    const byDn = body.subarray(at, at + header.layout.byDn);
    let slot = 4;
    while (byDn.readUInt32LE(slot) === 0) slot += 8;
    byDn.writeUInt32LE(1, slot); // id 0 + 1
    header.crc32[3] = crc32(byDn);
    await writeFile(file, Buffer.concat([Buffer.from(`${SNAPSHOT_MAGIC}\n${JSON.stringify(header)}\n`), body]));
    await rejectsWith(file, /inconsistent contents \(the DN index names an unknown entry\)/);
  });

  test('rejects a flipped byte in any section (index arrays, records)', async () => {
    const file = await written('flipped-sections');
    const good = await readFile(file);
    const nl2 = good.indexOf(0x0a, good.indexOf(0x0a) + 1);
    const { layout } = JSON.parse(good.subarray(good.indexOf(0x0a) + 1, nl2).toString('utf8')) as { layout: { meta: number; offsets: number; byAddress: number; byDn: number } };
    const body = nl2 + 1;
    const inside = [body + layout.meta + 1, body + layout.meta + layout.offsets + 3, body + layout.meta + layout.offsets + layout.byAddress + 5, good.length - 2];
    for (const at of inside) {
      const buf = Buffer.from(good);
      buf[at] = buf[at]! ^ 0x10;
      await writeFile(file, buf);
      await rejectsWith(file, /checksum mismatch/);
    }
  });

  test('still reads a version-2 file (one SHA-256 over the same sections) and refuses it corrupt', async () => {
    const { createHash } = await import('node:crypto');
    const file = await written('v2');
    const buf = await readFile(file);
    const nl1 = buf.indexOf(0x0a);
    const nl2 = buf.indexOf(0x0a, nl1 + 1);
    const header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as Record<string, unknown>;
    const body = Buffer.from(buf.subarray(nl2 + 1));
    delete header.crc32;
    header.sha256 = createHash('sha256').update(body).digest('hex');
    const v2 = (b: Buffer) => Buffer.concat([Buffer.from(`rcptgate-snapshot 2\n${JSON.stringify(header)}\n`), b]);
    await writeFile(file, v2(body));
    const read = await readSnapshot(file, SOURCE);
    assert.deepEqual(read.records, RECORDS);
    assert.equal(read.header.sha256, header.sha256);
    body[body.length - 3] = body[body.length - 3]! ^ 0x01;
    await writeFile(file, v2(body));
    await rejectsWith(file, /checksum mismatch/);
  });

  test('refuses a format version it does not know, and says so', async () => {
    const file = await written('v9');
    const buf = await readFile(file);
    await writeFile(file, Buffer.concat([Buffer.from('rcptgate-snapshot 9'), buf.subarray(buf.indexOf(0x0a))]));
    await rejectsWith(file, /format version 9 is not one this release reads \(1 to 4\)/);
  });

  test('refuses a version-4 header without its checksums', async () => {
    const file = await written('nocrc');
    const buf = await readFile(file);
    const nl1 = buf.indexOf(0x0a);
    const nl2 = buf.indexOf(0x0a, nl1 + 1);
    const header = JSON.parse(buf.subarray(nl1 + 1, nl2).toString('utf8')) as Record<string, unknown> & { crc32: number[] };
    header.crc32 = header.crc32.slice(1);
    await writeFile(file, Buffer.concat([Buffer.from(`${SNAPSHOT_MAGIC}\n${JSON.stringify(header)}\n`), buf.subarray(nl2 + 1)]));
    await rejectsWith(file, /incomplete header/);
  });

  test('still reads a version-1 (JSON lines) file, so an upgrade keeps serving from its snapshot', async () => {
    const { createHash } = await import('node:crypto');
    const body = RECORDS.map((r) => JSON.stringify([r.dn, r.canonical, r.addresses]) + '\n').join('');
    const header = { createdAt: 7, fullAt: 5, source: SOURCE, entries: 3, addresses: 4, sha256: createHash('sha256').update(body).digest('hex') };
    const file = path.join(dir, 'v1');
    await writeFile(file, `${SNAPSHOT_MAGIC_V1}\n${JSON.stringify(header)}\n${body}`);
    const read = await readSnapshot(file, SOURCE);
    assert.deepEqual(read.records, RECORDS);
    assert.deepEqual([read.header.createdAt, read.header.fullAt], [7, 5]);
    await writeFile(file, `${SNAPSHOT_MAGIC_V1}\n${JSON.stringify(header)}\n${body.replace('[', '{')}`);
    await rejectsWith(file, /checksum mismatch/);
  });

  test('round-trips a store with replaced, removed and shared entries as the same answers', async () => {
    const sub = path.join(dir, 'churn');
    await mkdir(sub);
    const file = path.join(sub, 'snapshot');
    const store = SnapshotStore.from(RECORDS, 1, Infinity);
    store.upsert({ dn: 'uid=carol,ou=staff,dc=example,dc=com', canonical: 'carol@example.com', addresses: ['carol@example.com', 'ally@example.com'] });
    store.upsert({ dn: 'UID=Alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com', 'alice2@example.com'] });
    store.remove('uid=bob,ou=people,dc=example,dc=com');
    await writeSnapshot(file, SOURCE, 9, store);
    const { store: back } = await readSnapshotStore(file, SOURCE, Infinity);
    for (const a of ['alice@example.com', 'alice2@example.com', 'ally@example.com', 'bob@example.com', 'carol@example.com', 'jürgen@xn--bcher-kva.example']) {
      assert.equal(back.get(a), store.get(a), a);
    }
    assert.equal(back.get('ally@example.com'), 'carol@example.com');
    assert.deepEqual([back.entries, back.size], [3, 5]);
    // The loaded store keeps taking changes: a rename drops the old address.
    back.upsert({ dn: 'uid=carol,ou=staff,dc=example,dc=com', canonical: 'caroline@example.com', addresses: ['caroline@example.com'] });
    assert.equal(back.get('carol@example.com'), undefined);
    assert.equal(back.get('ally@example.com'), undefined);
    assert.equal(back.get('caroline@example.com'), 'caroline@example.com');
  });

  test('rejects a missing file with "no such file"', async () => {
    await rejectsWith(path.join(dir, 'does-not-exist'), /no such file/);
  });

  test('rejects a path that is a directory', async () => {
    await rejectsWith(dir, /cannot read it/);
  });

  test('replaces the old file and leaves no temp file behind', async () => {
    const file = await written('replace');
    await writeSnapshot(file, SOURCE, 1_700_000_000_001, RECORDS.slice(0, 1));
    const { header, records } = await readSnapshot(file, SOURCE);
    assert.equal(header.createdAt, 1_700_000_000_001);
    assert.equal(records.length, 1);
    assert.deepEqual(await readdir(path.dirname(file)), ['snapshot']);
  });

  test('keeps the old file and leaves no temp file when the directory is not writable', async () => {
    const file = await written('readonly');
    const sub = path.dirname(file);
    const before = await readFile(file);
    // The unprivileged writer may enter the directories but not create files in `sub`.
    await chmod(dir, 0o711);
    await chmod(file, 0o644);
    await chmod(sub, 0o555);
    try {
      const error = await writeAsUnprivileged(file);
      assert.match(error, /EACCES|EPERM/);
    } finally {
      await chmod(sub, 0o755);
      await chmod(dir, 0o700);
    }
    assert.deepEqual(await readFile(file), before);
    assert.deepEqual(await readdir(sub), ['snapshot']);
    assert.equal((await readSnapshot(file, SOURCE)).records.length, RECORDS.length);
  });

  test('keeps what is at the path and removes its temp file when the final rename fails', async () => {
    const sub = path.join(dir, 'rename');
    const target = path.join(sub, 'snapshot');
    await mkdir(path.join(target, 'occupied'), { recursive: true });
    await assert.rejects(writeSnapshot(target, SOURCE, 1, RECORDS), /EISDIR|ENOTEMPTY|EEXIST|not a regular file: a directory/);
    assert.deepEqual(await readdir(sub), ['snapshot']);
    assert.deepEqual(await readdir(target), ['occupied']);
  });
});

/**
 * Tries writeSnapshot(file) in a child process without root's override of file permissions
 * (it drops to `nobody` after loading when the tests run as root); resolves with the error it got.
 */
async function writeAsUnprivileged(file: string): Promise<string> {
  const moduleUrl = pathToFileURL(path.resolve(import.meta.dirname, '../../src/snapshot/file.ts')).href;
  const script = `
    const { writeSnapshot } = await import(${JSON.stringify(moduleUrl)});
    // Drop root only now: node, tsx and the module may live where "nobody" cannot read.
    if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
    try {
      await writeSnapshot(${JSON.stringify(file)}, ${JSON.stringify(SOURCE)}, 2, [{ dn: 'uid=new', canonical: 'new@example.com', addresses: ['new@example.com'] }]);
      process.stdout.write('written');
    } catch (err) {
      process.stdout.write('error: ' + err.message);
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: path.resolve(import.meta.dirname, '../..'),
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, `child failed: ${err}`);
  assert.ok(out.startsWith('error: '), `the write should have failed, child said: ${out}`);
  return out;
}
