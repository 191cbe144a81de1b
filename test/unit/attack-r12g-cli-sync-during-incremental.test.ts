/**
 * `rcptgate sync` beside the service (a shrink applied with RCPTGATE_SYNC_MAX_SHRINK=1 for that
 * one run, as the README says) finishing while the service's incremental sync runs: the
 * incremental merged its changes into the older snapshot and wrote it over the file the command
 * had just written, so the shrink was undone on disk and never served (leavers valid from the
 * snapshot; the service's own full syncs refused as a shrink). The directory here lists from
 * memory and holds the incremental listing open while the command's file is written: a real
 * slapd cannot be made to finish a listing at that moment (the integration test
 * attack-r12d-cli-sync-beside-serve runs the real command between syncs).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import type { DirectoryAnswer, DirectoryRecord } from '../../src/directory/types.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { readSnapshot, writeSnapshot } from '../../src/snapshot/file.js';
import { SnapshotSync, snapshotSource } from '../../src/snapshot/sync.js';

const rec = (uid: string): DirectoryRecord => ({ dn: `uid=${uid},ou=people,dc=example,dc=com`, canonical: `${uid}@example.com`, addresses: [`${uid}@example.com`] });
let listed: DirectoryRecord[] = [];
/** While set, an incremental listing waits here before its records. */
let gate: Promise<void> | null = null;
let entered: () => void = () => undefined;
const directory = {
  kind: 'ldap' as const,
  async *listAll(options: { changedSince?: Date } = {}): AsyncIterable<DirectoryRecord> {
    if (options.changedSince && gate) {
      entered();
      await gate;
    }
    yield* listed;
  },
  lookup: (): Promise<DirectoryAnswer> => Promise.reject(new Error('no single lookups')),
  probe: async () => undefined,
  close: async () => undefined,
};
const quiet = new Writable({ write: (_c, _e, done) => done() });

let dir: string;
before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12g-cli-inc-'))));
after(async () => rm(dir, { recursive: true, force: true }));

test('a file written by rcptgate sync during an incremental sync is not overwritten, and is served at the next sync', async () => {
  const config = configSchema.parse({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } }, sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h' } });
  const file = config.sync.snapshotPath!;
  const s = new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: createLogger('silent', quiet), onSnapshot: () => undefined });
  listed = ['a', 'b', 'c', 'd'].map(rec);
  await s.full();
  await new Promise((r) => setTimeout(r, 10));

  // b, c and d left; a changed. The incremental sync lists while the command writes its file.
  let release: () => void = () => undefined;
  gate = new Promise<void>((r) => (release = r));
  const inside = new Promise<void>((r) => (entered = r));
  listed = [{ ...rec('a'), addresses: ['a@example.com', 'alias-a@example.com'] }];
  const running = s.incremental();
  await inside;
  const cliStarted = Date.now();
  await writeSnapshot(file, snapshotSource(config), cliStarted, listed, cliStarted);
  release();
  gate = null;
  await running;

  const onDisk = await readSnapshot(file, snapshotSource(config));
  assert.deepEqual(onDisk.records.map((r) => r.dn.split(',')[0]), ['uid=a'], 'the command\'s file stays on disk');
  await s.incremental();
  assert.equal(s.current!.get('b@example.com'), undefined, 'a leaver is no longer served at the next sync');
  assert.equal(s.current!.get('alias-a@example.com'), 'a@example.com');
  await s.stop();
});
