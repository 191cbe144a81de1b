import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import type { Directory, DirectoryAnswer, DirectoryRecord } from '../../src/directory/types.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { readSnapshot } from '../../src/snapshot/file.js';
import type { SnapshotStore } from '../../src/snapshot/store.js';
import { SnapshotSync, snapshotSource } from '../../src/snapshot/sync.js';
import { FakeClock } from '../helpers/fake-directory.js';

/** A directory that lists a mutable table; records which listings were asked for. */
class ListingDirectory implements Directory {
  readonly kind = 'ldap' as const;
  readonly entries = new Map<string, DirectoryRecord & { changedAt: number }>();
  readonly listings: Array<{ changedSince: Date | undefined }> = [];
  /** Thrown by the next listings, after `failAfter` records. */
  failure: Error | null = null;
  failAfter = 0;
  /** While set, a listing waits here before its first record (for stop() during a sync). */
  gate: Promise<void> | null = null;
  lastSignal: AbortSignal | undefined;
  /** Records handed out by listings, all of them. */
  yielded = 0;

  set(uid: string, changedAt: number, ...addresses: string[]): void {
    const dn = `uid=${uid},ou=people,dc=example,dc=com`;
    this.entries.set(dn, { dn, canonical: addresses[0]!, addresses, changedAt });
  }

  delete(uid: string): void {
    this.entries.delete(`uid=${uid},ou=people,dc=example,dc=com`);
  }

  async *listAll(options: { changedSince?: Date; signal?: AbortSignal } = {}): AsyncIterable<DirectoryRecord> {
    this.listings.push({ changedSince: options.changedSince });
    this.lastSignal = options.signal;
    if (this.gate) await this.gate;
    if (options.signal?.aborted) throw new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'aborted');
    let n = 0;
    for (const e of [...this.entries.values()]) {
      if (this.failure && n >= this.failAfter) throw this.failure;
      if (options.changedSince && e.changedAt < options.changedSince.getTime()) continue;
      n++;
      this.yielded++;
      yield { dn: e.dn, canonical: e.canonical, addresses: e.addresses };
    }
    if (this.failure) throw this.failure;
  }

  async lookup(): Promise<DirectoryAnswer> {
    throw new Error('snapshot syncs must not use single lookups');
  }

  async probe(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Log lines as parsed JSON objects. */
class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown> & { msg: string; level: number }> = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l.trim()) this.lines.push(JSON.parse(l));
    done();
  }
  messages(): string[] {
    return this.lines.map((l) => l.msg);
  }
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-snapsync-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
function config(overrides: Partial<ConfigInput['sync']> = {}, baseDN = 'dc=example,dc=com'): Config {
  return configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN } },
    domains: ['example.com'],
    sync: { enabled: true, snapshotPath: path.join(dir, `snapshot-${++n}`), ...overrides },
  });
}

interface Harness {
  sync: SnapshotSync;
  directory: ListingDirectory;
  metrics: Metrics;
  logs: LogSink;
  published: SnapshotStore[];
  clock: FakeClock;
  config: Config;
}

function harness(cfg: Config = config(), directory = new ListingDirectory(), clock = new FakeClock(), maxIncrementalChanges?: number): Harness {
  const metrics = new Metrics({ defaultMetrics: false });
  const logs = new LogSink();
  const published: SnapshotStore[] = [];
  const sync = new SnapshotSync({ config: cfg, directory, metrics, logger: createLogger('debug', logs), onSnapshot: (s) => published.push(s), now: clock.now, steadyNow: clock.now, maxIncrementalChanges });
  return { sync, directory, metrics, logs, published, clock, config: cfg };
}

async function failures(metrics: Metrics, kind: 'full' | 'incremental'): Promise<number> {
  const m = await metrics.syncFailures.get();
  return m.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

async function gauge(metrics: Metrics, name: 'snapshotEntries' | 'snapshotAge'): Promise<number> {
  return (await metrics[name].get()).values[0]?.value ?? NaN;
}

function seeded(h: Harness): void {
  h.directory.set('alice', h.clock.t - 10_000, 'alice@example.com', 'ally@example.com');
  h.directory.set('bob', h.clock.t - 10_000, 'bob@example.com');
}

describe('snapshot sync', () => {
  test('a full sync publishes every address, writes the file and sets the gauges', async () => {
    const h = harness();
    seeded(h);
    const report = await h.sync.full();
    assert.deepEqual({ kind: report.kind, entries: report.entries, addresses: report.addresses }, { kind: 'full', entries: 2, addresses: 3 });
    assert.equal(h.published.length, 1);
    assert.equal(h.sync.current, h.published[0]);
    assert.equal(h.sync.current!.get('ally@example.com'), 'alice@example.com');
    assert.equal(h.sync.current!.get('carol@example.com'), undefined);
    assert.equal(h.sync.current!.isFresh(), true);
    assert.equal(await gauge(h.metrics, 'snapshotEntries'), 3);
    assert.equal(h.directory.listings[0]!.changedSince, undefined, 'a full sync lists everything');
    const file = await readSnapshot(h.config.sync.snapshotPath!, snapshotSource(h.config));
    assert.equal(file.header.entries, 2);
    assert.equal(file.header.createdAt, h.clock.t);
    await h.sync.stop();
  });

  test('a new process loads the written snapshot before any sync and keeps its creation time', async () => {
    const first = harness();
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const clock = new FakeClock(first.clock.t + 5 * 60_000);
    const second = harness(first.config, new ListingDirectory(), clock);
    assert.equal(await second.sync.load(), true);
    assert.equal(second.directory.listings.length, 0, 'loading does not ask the directory');
    assert.equal(second.sync.current!.get('bob@example.com'), 'bob@example.com');
    assert.equal(second.sync.current!.ageSeconds(), 300);
    const loaded = second.logs.lines.find((l) => l.msg === 'snapshot loaded');
    assert.ok(loaded, 'logs "snapshot loaded"');
    assert.ok(Number.isInteger(loaded.loadMs) && (loaded.loadMs as number) >= 0, 'with the time the load took');
    await second.sync.stop();
  });

  test('load() of a snapshot older than sync.maxAge publishes it as stale', async () => {
    const first = harness(config({ maxAge: '1h' }));
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const second = harness(first.config, new ListingDirectory(), new FakeClock(first.clock.t + 2 * 3_600_000));
    assert.equal(await second.sync.load(), true);
    assert.equal(second.sync.current!.isFresh(), false);
    await second.sync.stop();
  });

  test('load() of a missing file logs why and leaves no snapshot', async () => {
    const h = harness();
    assert.equal(await h.sync.load(), false);
    assert.equal(h.sync.current, null);
    assert.equal(h.published.length, 0);
    const warn = h.logs.lines.find((l) => l.level === 40);
    assert.match(String((warn?.err as { message?: string })?.message), /no such file/);
    await h.sync.stop();
  });

  test('load() of a corrupt file logs the reason and does not crash', async () => {
    const first = harness();
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const file = first.config.sync.snapshotPath!;
    const buf = await readFile(file);
    buf[buf.length - 5] = buf[buf.length - 5]! ^ 0xff;
    await writeFile(file, buf);
    const second = harness(first.config);
    assert.equal(await second.sync.load(), false);
    assert.equal(second.sync.current, null);
    const warn = second.logs.lines.find((l) => l.level === 40)!;
    assert.match(warn.msg, /snapshot not loaded/);
    assert.match(String((warn.err as { message: string }).message), /checksum mismatch/);
    await second.sync.stop();
  });

  test('load() refuses a snapshot written for another base DN', async () => {
    const first = harness();
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const other = config({ snapshotPath: first.config.sync.snapshotPath }, 'dc=other,dc=org');
    const second = harness(other);
    assert.equal(await second.sync.load(), false);
    assert.match(String((second.logs.lines.find((l) => l.level === 40)!.err as { message: string }).message), /another directory/);
    await second.sync.stop();
  });

  test('an incremental sync asks for changes since the last sync (with skew margin) and merges adds and modifies', async () => {
    const h = harness(config({ maxShrink: 1 }));
    seeded(h);
    await h.sync.full();
    const fullAt = h.clock.t;
    h.clock.advance(60_000);
    h.directory.set('carol', h.clock.t, 'carol@example.com');
    h.directory.set('alice', h.clock.t, 'alice.smith@example.com');
    h.directory.delete('bob');
    const report = await h.sync.incremental();
    assert.equal(report.kind, 'incremental');
    assert.equal(report.changed, 2);
    assert.equal(h.directory.listings[1]!.changedSince!.getTime(), fullAt - 60_000);
    const s = h.sync.current!;
    assert.equal(s.get('carol@example.com'), 'carol@example.com');
    assert.equal(s.get('alice.smith@example.com'), 'alice.smith@example.com');
    assert.equal(s.get('alice@example.com'), undefined, 'the old mail of a modified entry is gone');
    assert.equal(s.get('ally@example.com'), undefined);
    assert.equal(s.get('bob@example.com'), 'bob@example.com', 'deletions wait for the next full sync');
    assert.equal(s.createdAt, fullAt, 'an incremental sync does not refresh the age: sync.maxAge counts from the last full sync');
    const onDisk = await readSnapshot(h.config.sync.snapshotPath!, snapshotSource(h.config));
    assert.equal(onDisk.header.createdAt, h.clock.t, 'merged changes are persisted');
    assert.ok(onDisk.records.some((r) => r.addresses.includes('carol@example.com')));

    h.clock.advance(60_000);
    await h.sync.full();
    assert.equal(h.sync.current!.get('bob@example.com'), undefined, 'the full sync drops deleted entries');
    await h.sync.stop();
  });

  test('an incremental sync before any snapshot runs a full sync', async () => {
    const h = harness();
    seeded(h);
    const report = await h.sync.incremental();
    assert.equal(report.kind, 'full');
    assert.equal(h.directory.listings[0]!.changedSince, undefined);
    await h.sync.stop();
  });

  test('an incremental sync that sees more changed entries than it holds stops listing and gives way to a full sync', async () => {
    const h = harness(config(), undefined, undefined, 5);
    seeded(h);
    await h.sync.full();
    h.clock.advance(60_000);
    for (const u of ['carol', 'dave', 'erin']) h.directory.set(u, h.clock.t, `${u}@example.com`);
    // Within the skew margin alice and bob are listed again: 5 entries, as many as it holds.
    assert.equal((await h.sync.incremental()).kind, 'incremental', 'as many changes as it holds: merged');
    h.clock.advance(60_000);
    for (const u of ['frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory']) h.directory.set(u, h.clock.t, `${u}@example.com`);
    h.directory.delete('bob');
    const before = h.directory.yielded;
    const report = await h.sync.incremental();
    assert.equal(report.kind, 'full');
    assert.deepEqual(h.directory.listings.map((l) => l.changedSince !== undefined), [false, true, true, false]);
    assert.equal(h.directory.yielded - before, 6 + 10, 'the bulk listing ended at the first entry past the limit, then the full listing');
    assert.equal(h.sync.current!.get('mallory@example.com'), 'mallory@example.com');
    assert.equal(h.sync.current!.get('bob@example.com'), undefined, 'a full sync: deletions are applied too');
    assert.ok(h.logs.messages().includes('incremental sync saw more changed entries than it holds; running a full sync instead'));
    await h.sync.stop();
  });

  test('a failing full sync keeps the old snapshot and file and counts rcptgate_sync_failures_total', async () => {
    const h = harness();
    seeded(h);
    await h.sync.full();
    const before = h.sync.current;
    const fileBefore = await readFile(h.config.sync.snapshotPath!);
    h.directory.delete('alice');
    h.directory.failure = new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'connection refused');
    h.directory.failAfter = 1; // fails halfway through the listing
    await assert.rejects(h.sync.full(), /connection refused/);
    assert.equal(h.sync.current, before);
    assert.equal(h.sync.current!.get('alice@example.com'), 'alice@example.com');
    assert.equal(h.published.length, 1);
    assert.deepEqual(await readFile(h.config.sync.snapshotPath!), fileBefore);
    assert.equal(await failures(h.metrics, 'full'), 1);
    assert.ok(h.logs.messages().includes('full sync failed; keeping the current snapshot'));
    const text = await h.metrics.registry.metrics();
    assert.match(text, /^rcptgate_sync_failures_total\{kind="full"\} 1$/m);
    await h.sync.stop();
  });

  test('a failing incremental sync keeps the snapshot unchanged and counts the failure', async () => {
    const h = harness();
    seeded(h);
    await h.sync.full();
    h.clock.advance(60_000);
    h.directory.set('carol', h.clock.t, 'carol@example.com');
    h.directory.failure = new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'timed out');
    h.directory.failAfter = 1;
    await assert.rejects(h.sync.incremental(), /timed out/);
    assert.equal(h.sync.current!.get('carol@example.com'), undefined, 'a partial listing is not merged');
    assert.equal(await failures(h.metrics, 'incremental'), 1);
    assert.equal(await failures(h.metrics, 'full'), 0);
    await h.sync.stop();
  });

  test('refuses an empty listing instead of publishing a snapshot that makes everyone unknown', async () => {
    const h = harness();
    seeded(h);
    await h.sync.full();
    h.directory.entries.clear();
    await assert.rejects(h.sync.full(), /no entries/);
    assert.equal(h.sync.current!.get('bob@example.com'), 'bob@example.com');
    assert.equal(await failures(h.metrics, 'full'), 1);
    await h.sync.stop();
  });

  test('a snapshot whose file cannot be written is served from memory, counted and logged, never fatal', async () => {
    const h = harness(config({ snapshotPath: path.join(dir, 'missing-dir', 'snapshot') }));
    seeded(h);
    await h.sync.full();
    assert.equal(h.sync.current!.get('bob@example.com'), 'bob@example.com');
    assert.equal(h.sync.current!.isFresh(), true);
    assert.equal(await failures(h.metrics, 'full'), 1);
    assert.ok(h.logs.lines.some((l) => l.level === 50 && /snapshot file not written/.test(String(l.msg))));
    await h.sync.stop();
  });

  test('rcptgate sync (mustWrite): a file that cannot be written fails the sync', async () => {
    const h = harness(config({ snapshotPath: path.join(dir, 'missing-dir', 'snapshot') }));
    seeded(h);
    await assert.rejects(h.sync.full(undefined, true), /ENOENT/);
    assert.equal(h.sync.current, null);
    assert.equal(await failures(h.metrics, 'full'), 1);
    await h.sync.stop();
  });

  test('syncs never overlap: a second full sync waits for the first', async () => {
    const h = harness();
    seeded(h);
    let open!: () => void;
    h.directory.gate = new Promise<void>((r) => (open = r));
    const first = h.sync.full();
    const second = h.sync.full();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(h.directory.listings.length, 1, 'the second listing has not started');
    h.directory.gate = null;
    open();
    await Promise.all([first, second]);
    assert.equal(h.directory.listings.length, 2);
    await h.sync.stop();
  });

  test('stop() aborts a listing in progress without counting a failure', async () => {
    const h = harness();
    seeded(h);
    let open!: () => void;
    h.directory.gate = new Promise<void>((r) => (open = r));
    const running = h.sync.full();
    await new Promise((r) => setTimeout(r, 10));
    const stopping = h.sync.stop();
    assert.equal(h.directory.lastSignal?.aborted, true);
    open();
    await assert.rejects(running);
    await stopping;
    assert.equal(await failures(h.metrics, 'full'), 0);
    assert.equal(h.sync.current, null);
  });

  test('start() syncs at once, then runs incremental syncs on their interval', async () => {
    const h = harness(config({ interval: '1h', incrementalInterval: '1s' }));
    seeded(h);
    h.sync.start();
    const deadline = Date.now() + 10_000;
    while (h.directory.listings.filter((l) => l.changedSince).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await h.sync.stop();
    assert.equal(h.directory.listings[0]!.changedSince, undefined, 'the first sync is a full one');
    assert.ok(h.directory.listings.filter((l) => l.changedSince).length >= 2, 'incremental syncs followed');
    assert.equal(h.sync.current!.get('alice@example.com'), 'alice@example.com');
    const count = h.directory.listings.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.directory.listings.length, count, 'no sync after stop()');
  });

  test('after a restart with a recent full sync, start() catches up incrementally and defers the full sync', async () => {
    const first = harness(config({ interval: '1h', incrementalInterval: '30m' }));
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const second = harness(first.config, new ListingDirectory(), new FakeClock(first.clock.t + 5 * 60_000));
    seeded(second);
    await second.sync.load();
    second.sync.start();
    const deadline = Date.now() + 5_000;
    while (second.directory.listings.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    await second.sync.stop();
    assert.equal(second.directory.listings.length, 1, 'one listing only');
    assert.equal(second.directory.listings[0]!.changedSince!.getTime(), first.clock.t - 60_000, 'an incremental one, since the file');
  });

  test("start() runs a full sync at once when the loaded snapshot's last full sync is older than sync.interval", async () => {
    const first = harness(config({ interval: '1h', incrementalInterval: '1h', maxShrink: 1 }));
    seeded(first);
    await first.sync.full();
    // Incremental syncs refresh createdAt but not the time of the last full sync.
    first.clock.advance(50 * 60_000);
    first.directory.set('carol', first.clock.t, 'carol@example.com');
    await first.sync.incremental();
    await first.sync.stop();
    const onDisk = await readSnapshot(first.config.sync.snapshotPath!, snapshotSource(first.config));
    assert.equal(onDisk.header.fullAt, first.clock.t - 50 * 60_000);
    assert.equal(onDisk.header.createdAt, first.clock.t);

    const second = harness(first.config, new ListingDirectory(), new FakeClock(first.clock.t + 11 * 60_000));
    seeded(second);
    await second.sync.load();
    second.sync.start();
    const deadline = Date.now() + 5_000;
    while (!second.published.some((s) => s !== second.published[0]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await second.sync.stop();
    assert.equal(second.directory.listings[0]!.changedSince, undefined, 'a full listing');
    assert.equal(second.sync.current!.get('carol@example.com'), undefined, 'the full sync replaced the loaded data');
  });

  test('sync.maxAge counts from the last full sync: incremental syncs do not keep the snapshot fresh', async () => {
    const h = harness(config({ maxAge: '1h' }));
    seeded(h);
    await h.sync.full();
    for (let i = 0; i < 7; i++) {
      h.clock.advance(10 * 60_000);
      h.directory.set('carol', h.clock.t, `carol${i}@example.com`);
      await h.sync.incremental();
    }
    assert.equal(h.sync.current!.isFresh(), false, '70 minutes after the last full sync');
    // Full syncs failing (e.g. sizeLimitExceeded) do not change that either.
    h.directory.failure = new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'sizeLimitExceeded');
    await assert.rejects(h.sync.full());
    assert.equal(h.sync.current!.isFresh(), false);
    h.directory.failure = null;
    await h.sync.full();
    assert.equal(h.sync.current!.isFresh(), true);
    await h.sync.stop();
  });

  test('an incremental sync that changed nothing does not rewrite the file, even within the skew window', async () => {
    const h = harness();
    seeded(h);
    await h.sync.full();
    h.clock.advance(1_000);
    h.directory.set('carol', h.clock.t, 'carol@example.com');
    assert.equal((await h.sync.incremental()).changed, 1);
    const written = (await readSnapshot(h.config.sync.snapshotPath!, snapshotSource(h.config))).header.createdAt;
    h.clock.advance(1_000);
    const again = await h.sync.incremental();
    assert.equal(again.changed, 0, 'carol is re-listed (skew margin) but unchanged');
    assert.equal((await readSnapshot(h.config.sync.snapshotPath!, snapshotSource(h.config))).header.createdAt, written);
    await h.sync.stop();
  });

  test('refuses a full sync that shrinks the snapshot by more than sync.maxShrink, with a log line and rcptgate_sync_refused_total', async () => {
    const h = harness();
    for (let i = 0; i < 100; i++) h.directory.set(`u${i}`, h.clock.t, `u${i}@example.com`);
    await h.sync.full();
    for (let i = 0; i < 10; i++) h.directory.delete(`u${i}`);
    await h.sync.full();
    assert.equal(h.sync.current!.entries, 90, 'exactly 10 % fewer is accepted');
    for (let i = 10; i < 97; i++) h.directory.delete(`u${i}`);
    const before = h.sync.current;
    await assert.rejects(h.sync.full(), /down from 90/);
    assert.equal(h.sync.current, before, 'the old snapshot is kept');
    assert.equal(h.sync.current!.get('u50@example.com'), 'u50@example.com');
    const refused = (await h.metrics.syncRefused.get()).values.find((v) => v.labels.reason === 'shrink')?.value;
    assert.equal(refused, 1);
    assert.ok(h.logs.messages().some((m) => m.startsWith('full sync refused')));
    const onDisk = await readSnapshot(h.config.sync.snapshotPath!, snapshotSource(h.config));
    assert.equal(onDisk.records.length, 90);
    await h.sync.stop();
  });

  test('refuses a full listing that lacks a canary address', async () => {
    const cfg = configSchema.parse({ ...config(), directory: { ...config().directory, canaries: ['canary@example.com'] } });
    const h = harness(cfg);
    seeded(h);
    await assert.rejects(h.sync.full(), /canary/);
    h.directory.set('canary', h.clock.t, 'canary@example.com');
    await h.sync.full();
    await h.sync.stop();
  });

  test('does not trust a snapshot whose header lies in the future', async () => {
    const clock = new FakeClock();
    const first = harness(config(), new ListingDirectory(), new FakeClock(clock.t + 3_600_000));
    seeded(first);
    await first.sync.full();
    await first.sync.stop();
    const second = harness(first.config, new ListingDirectory(), clock);
    assert.equal(await second.sync.load(), true);
    assert.equal(second.sync.current!.isFresh(), false);
    await second.sync.stop();
  });

  test('leaves no temp files next to the snapshot', async () => {
    const h = harness();
    seeded(h);
    await h.sync.full();
    h.clock.advance(1000);
    h.directory.set('carol', h.clock.t, 'carol@example.com');
    await h.sync.incremental();
    const base = path.basename(h.config.sync.snapshotPath!);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes(base) && f !== base), []);
    await h.sync.stop();
  });
});
