/**
 * The snapshot file another writer puts at the path (`rcptgate sync` beside the service) is read
 * before the next sync, and only then: the file the service wrote itself, handed over by a reload
 * that keeps the directory, is not read again (a 10-million-address file takes seconds), and an
 * older file is not served over a newer snapshot. The directory here lists from memory (the
 * integration test attack-r12d-cli-sync-beside-serve runs the real command against slapd).
 */
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { configSchema, type Config } from '../../src/config/schema.js';
import type { DirectoryAnswer, DirectoryRecord } from '../../src/directory/types.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { writeSnapshot } from '../../src/snapshot/file.js';
import { SnapshotSync, snapshotSource } from '../../src/snapshot/sync.js';

const rec = (uid: string): DirectoryRecord => ({ dn: `uid=${uid},ou=people,dc=example,dc=com`, canonical: `${uid}@example.com`, addresses: [`${uid}@example.com`] });
let listed: DirectoryRecord[] = [];
const directory = {
  kind: 'ldap' as const,
  async *listAll(): AsyncIterable<DirectoryRecord> {
    yield* listed;
  },
  lookup: (): Promise<DirectoryAnswer> => Promise.reject(new Error('no single lookups')),
  probe: async () => undefined,
  close: async () => undefined,
};

class Lines extends Writable {
  readonly msgs: string[] = [];
  override _write(chunk: Buffer, _e: string, done: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l.trim()) this.msgs.push((JSON.parse(l) as { msg: string }).msg);
    done();
  }
}

let dir: string;
before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-stamp-'))));
after(async () => rm(dir, { recursive: true, force: true }));

function syncer(config: Config, lines: Lines): SnapshotSync {
  return new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: createLogger('debug', lines), onSnapshot: () => undefined });
}
const config = (name: string, interval = '1h'): Config =>
  configSchema.parse({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } }, sync: { enabled: true, snapshotPath: path.join(dir, name), interval } });

describe('the snapshot file between syncs', () => {
  test('a newer file written by another process is served at the next sync; an older one is not', async () => {
    listed = ['a', 'b', 'c'].map(rec);
    const lines = new Lines();
    const cfg = config('other-writer');
    const s = syncer(cfg, lines);
    await s.full();
    await new Promise((r) => setTimeout(r, 10));
    listed = [rec('a')];
    await writeSnapshot(cfg.sync.snapshotPath!, snapshotSource(cfg), Date.now(), listed, Date.now());
    await s.incremental();
    assert.equal(s.current!.get('b@example.com'), undefined, 'the newer file is served');
    assert.equal(s.current!.entries, 1);
    await writeSnapshot(cfg.sync.snapshotPath!, snapshotSource(cfg), 1000, ['a', 'b', 'c'].map(rec), 1000);
    await s.incremental();
    assert.equal(s.current!.entries, 1, 'an older file is not served over a newer snapshot');
    await s.stop();
  });

  test('a reload that keeps the directory does not read back the file the service wrote', async () => {
    listed = ['a', 'b'].map(rec);
    const lines = new Lines();
    const before = syncer(config('own'), lines);
    await before.full();
    const after = syncer(config('own', '2h'), lines);
    await before.stop();
    // Spoiled in place, its size and time kept: read again, it would be refused and say so.
    const file = path.join(dir, 'own');
    const { mtimeMs, atimeMs } = await stat(file);
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('spoiled'), 0, 7, (await fh.stat()).size - 7);
    await fh.close();
    await utimes(file, atimeMs / 1000, mtimeMs / 1000);
    after.adopt(before);
    await after.incremental();
    assert.deepEqual(lines.msgs.filter((m) => m.startsWith('snapshot')), [], 'the file was read again');
    await after.stop();
  });
});
