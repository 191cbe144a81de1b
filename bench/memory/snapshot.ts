/**
 * Snapshot at scale, without LDAP: a full sync of N generated addresses (default 1,000,000)
 * through the real SnapshotSync (store build + snapshot file write) from a directory whose
 * listing generates records, the RSS afterwards, and the engine's lookup latency against that
 * snapshot compared with a 10,000-address one (same process, rounds interleaved).
 * Prints one JSON line. Run with --expose-gc.
 *
 *   node --expose-gc --import tsx bench/memory/snapshot.ts 1000000
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import type { Directory, DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import type { SnapshotStore } from '../../src/snapshot/store.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';

const big = Number(process.argv[2] ?? 1_000_000);
const small = 10_000;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const mb = (b: number) => b / 1024 / 1024;
const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-snap-'));

function generated(n: number): Directory {
  return {
    kind: 'ldap',
    lookup: async () => ({ entry: null }),
    probe: async () => undefined,
    listAll: async function* (): AsyncIterable<DirectoryRecord> {
      for (let k = 1; k <= n; k++) yield { dn: `uid=user${k},ou=people,dc=example,dc=com`, canonical: `user${k}@example.com`, addresses: [`user${k}@example.com`] };
    },
    close: async () => undefined,
  };
}

async function sync(n: number): Promise<{ store: SnapshotStore; seconds: number; validator: RecipientValidatorImpl }> {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } },
    sync: { enabled: true, snapshotPath: path.join(dir, `snap-${n}.json`) },
  });
  const directory = generated(n);
  let store: SnapshotStore | null = null;
  const syncer = new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: (s) => (store = s) });
  const report = await syncer.full();
  await syncer.stop();
  const validator = new RecipientValidatorImpl({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), snapshot: store });
  return { store: store!, seconds: report.seconds, validator };
}

/** Median over rounds of the per-lookup p50 (µs), random keys, 70 % present. */
async function p50Micros(validator: RecipientValidatorImpl, n: number, samples: number): Promise<number> {
  const times = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const k = 1 + Math.floor(Math.random() * n);
    const key = Math.random() < 0.7 ? `user${k}@example.com` : `nouser${k}@example.com`;
    const t0 = process.hrtime.bigint();
    await validator.lookup(key, { frontend: 'socketmap' });
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  times.sort();
  return times[Math.floor(samples / 2)]!;
}

/** Mean ns per SnapshotStore.get() over random keys (the data structure alone). */
function getNanos(store: SnapshotStore, n: number, count: number): number {
  const keys = Array.from({ length: 10_000 }, () => `user${1 + Math.floor(Math.random() * n)}@example.com`);
  let hits = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) if (store.get(keys[i % keys.length]!) !== undefined) hits++;
  const ns = Number(process.hrtime.bigint() - t0) / count;
  if (hits !== count) throw new Error('generated keys missing from the snapshot');
  return ns;
}

try {
  const smallSnap = await sync(small);
  gc();
  const rssBefore = process.memoryUsage().rss;
  const bigSnap = await sync(big);
  gc();
  const rssAfter = process.memoryUsage().rss;
  const smallP50: number[] = [];
  const bigP50: number[] = [];
  const smallGet: number[] = [];
  const bigGet: number[] = [];
  await p50Micros(smallSnap.validator, small, 20_000); // warm-up (JIT)
  await p50Micros(bigSnap.validator, big, 20_000);
  for (let round = 0; round < 5; round++) {
    smallP50.push(await p50Micros(smallSnap.validator, small, 20_000));
    bigP50.push(await p50Micros(bigSnap.validator, big, 20_000));
    smallGet.push(getNanos(smallSnap.store, small, 1_000_000));
    bigGet.push(getNanos(bigSnap.store, big, 1_000_000));
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  process.stdout.write(
    JSON.stringify({
      addresses: bigSnap.store.size,
      syncSeconds: bigSnap.seconds,
      syncSecondsSmall: smallSnap.seconds,
      rssMB: mb(rssAfter),
      deltaMB: mb(rssAfter - rssBefore),
      p50SmallMicros: median(smallP50),
      p50BigMicros: median(bigP50),
      getSmallNanos: median(smallGet),
      getBigNanos: median(bigGet),
    }) + '\n',
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
