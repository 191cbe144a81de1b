/**
 * Snapshot at scale, without LDAP, against the previous store as the baseline in the same run.
 * For each store (the compact store, and the Map-based one of the previous release) a child
 * process runs a full sync of N generated addresses (default 1,000,000) and of 10,000, then
 * measures the RSS the big snapshot added and the engine's lookup p50 on both (same process,
 * rounds interleaved). A second child per store starts fresh and loads the file the first one
 * wrote: the time from that process's start until the snapshot is usable (both stores alike,
 * through tsx). "Start to ready" as deployed is the product itself: `node dist/main.js serve`,
 * compiled as the image and `npm start` run it, timed from spawn to its first listener (opened
 * only once the snapshot is loaded), with the stages before and during the load.
 * Prints one line per figure with PASS/FAIL against the targets, then one JSON line (the
 * compact store's figures under the names bench/run.ts reads, the baseline's as legacy*).
 * The RSS figure is also taken with the young-generation size a container budget sets, and
 * from a fresh process that only loaded the file (the steady state of a restarted replica).
 * Without a baseline (--no-baseline, implied from 5,000,000 up: the old store would need
 * gigabytes) the targets are the 10-million ones: RSS under 1.5 GB, p50 within 1.5x.
 *
 *   node --expose-gc --import tsx bench/memory/snapshot.ts [N] [--no-baseline]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../../src/config/load.js';
import type { Directory, DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { RecipientValidatorImpl, type SnapshotView } from '../../src/recipient/engine.js';
import { LegacySnapshotStore, readLegacySnapshot, writeLegacySnapshot } from './legacy-store.js';

type Kind = 'compact' | 'legacy';
const SMALL = 10_000;
type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };
const v8gc = (globalThis as { gc?: (o?: GcOptions) => void }).gc ?? (() => undefined);
/**
 * A memory-reducing full GC before each RSS reading, for both stores alike: V8 keeps the young
 * generation the sync's garbage grew until its memory reducer runs once allocation calms down;
 * this does that at once, so the figure is what the snapshot holds, not V8's headroom.
 */
const gc = () => v8gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
const mb = (b: number) => b / 1024 / 1024;

function records(n: number): Iterable<DirectoryRecord> {
  return {
    *[Symbol.iterator]() {
      for (let k = 1; k <= n; k++) yield { dn: `uid=user${k},ou=people,dc=example,dc=com`, canonical: `user${k}@example.com`, addresses: [`user${k}@example.com`] };
    },
  };
}

function generated(n: number): Directory {
  return {
    kind: 'ldap',
    lookup: async () => ({ entry: null }),
    probe: async () => undefined,
    listAll: async function* () {
      yield* records(n);
    },
    close: async () => undefined,
  };
}

function configFor(file: string) {
  return validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } },
    sync: { enabled: true, snapshotPath: file, maxAge: '1d' },
  });
}

/** One full sync of n addresses with the given store; returns it with the engine over it. */
async function sync(kind: Kind, n: number, file: string): Promise<{ store: SnapshotView & { size: number }; seconds: number; validator: RecipientValidatorImpl }> {
  const config = configFor(file);
  const directory = generated(n);
  const t0 = process.hrtime.bigint();
  let store: (SnapshotView & { size: number }) | null = null;
  if (kind === 'legacy') {
    // The previous release's full sync: every entry into the Map store, then the JSON-lines file.
    const s = new LegacySnapshotStore(Date.now(), 86_400_000);
    for await (const r of directory.listAll()) s.upsert(r);
    await writeLegacySnapshot(file, 'bench', Date.now(), s.records());
    store = s;
  } else {
    const syncer = new SnapshotSync({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: (s) => (store = s) });
    await syncer.full();
    await syncer.stop();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const validator = new RecipientValidatorImpl({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), snapshot: store });
  return { store: store!, seconds, validator };
}

/** Misses never asked before, in every store alike (see p50Micros). */
let missSerial = 0;

/**
 * p50 (µs) of engine lookups, random keys, 70 % present; also the p50 of the hits and of the
 * misses alone. Every miss is an address never asked before, for the small store as for the big
 * one: a miss is confirmed live (`sync.confirmMisses`) and its answer cached, so misses drawn
 * from the small store's 10,000 would be answer-cache hits there after a round, and directory
 * round trips in the big one: not the same work.
 */
async function p50Micros(validator: RecipientValidatorImpl, n: number, samples: number): Promise<{ all: number; hits: number; misses: number }> {
  const times = new Float64Array(samples);
  const hits: number[] = [];
  const misses: number[] = [];
  for (let i = 0; i < samples; i++) {
    const hit = Math.random() < 0.7;
    const key = hit ? `user${1 + Math.floor(Math.random() * n)}@example.com` : `nouser${++missSerial}@example.com`;
    const t0 = process.hrtime.bigint();
    await validator.lookup(key, { frontend: 'socketmap' });
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    (hit ? hits : misses).push(times[i]!);
  }
  times.sort();
  return { all: times[Math.floor(samples / 2)]!, hits: median(hits), misses: median(misses) };
}

/** Mean ns per store.get() over random present keys (the data structure alone). */
function getNanos(store: SnapshotView, n: number, count: number): number {
  const keys = Array.from({ length: 10_000 }, () => `user${1 + Math.floor(Math.random() * n)}@example.com`);
  let hits = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) if (store.get(keys[i % keys.length]!) !== undefined) hits++;
  const ns = Number(process.hrtime.bigint() - t0) / count;
  if (hits !== count) throw new Error('generated keys missing from the snapshot');
  return ns;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function measure(kind: Kind, n: number, dir: string): Promise<Record<string, number>> {
  const small = await sync(kind, SMALL, path.join(dir, `${kind}-small`));
  gc();
  const rssBefore = process.memoryUsage().rss;
  const big = await sync(kind, n, path.join(dir, kind));
  gc();
  const rssAfter = process.memoryUsage().rss;
  const peakMB = mb(process.resourceUsage().maxRSS * 1024);
  const smallP50: Array<{ all: number; hits: number; misses: number }> = [];
  const bigP50: typeof smallP50 = [];
  const smallGet: number[] = [];
  const bigGet: number[] = [];
  await p50Micros(small.validator, SMALL, 20_000); // warm-up (JIT)
  await p50Micros(big.validator, n, 20_000);
  // Interleaved rounds: whatever else the machine does weighs on both stores alike.
  for (let round = 0; round < 7; round++) {
    smallP50.push(await p50Micros(small.validator, SMALL, 20_000));
    bigP50.push(await p50Micros(big.validator, n, 20_000));
    smallGet.push(getNanos(small.store, SMALL, 1_000_000));
    bigGet.push(getNanos(big.store, n, 1_000_000));
  }
  const of = (a: typeof smallP50, k: 'all' | 'hits' | 'misses') => median(a.map((r) => r[k]));
  return {
    addresses: big.store.size,
    syncSeconds: big.seconds,
    syncSecondsSmall: small.seconds,
    rssMB: mb(rssAfter),
    peakRssMB: peakMB,
    deltaMB: mb(rssAfter - rssBefore),
    p50SmallMicros: of(smallP50, 'all'),
    p50BigMicros: of(bigP50, 'all'),
    p50HitsSmallMicros: of(smallP50, 'hits'),
    p50HitsBigMicros: of(bigP50, 'hits'),
    p50MissesSmallMicros: of(smallP50, 'misses'),
    p50MissesBigMicros: of(bigP50, 'misses'),
    getSmallNanos: median(smallGet),
    getBigNanos: median(bigGet),
  };
}

/** In a fresh process: load the snapshot file as a restarted replica would; ms since process start. */
async function ready(kind: Kind, file: string, n: number): Promise<Record<string, number>> {
  gc();
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  let loaded: { size: number } | null = null;
  if (kind === 'legacy') {
    loaded = await readLegacySnapshot(file, 86_400_000);
  } else {
    const syncer = new SnapshotSync({ config: configFor(file), directory: generated(0), metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), onSnapshot: (s) => (loaded = s) });
    if (!(await syncer.load())) throw new Error(`${file} did not load`);
    await syncer.stop();
  }
  const readyMs = performance.now();
  const loadMs = readyMs - t0;
  const size = (loaded as { size: number } | null)?.size ?? 0;
  if (size !== n) throw new Error(`loaded ${size} addresses, expected ${n}`);
  gc();
  // What a restarted replica holds: the snapshot as read from its file, no sync garbage.
  const loadedRssMB = mb(process.memoryUsage().rss - rss0);
  return { readyMs, loadMs, loadedRssMB, loadedAddresses: (loaded as { size: number } | null)?.size ?? 0 };
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** ms from spawning `node args` until it exits (bare node start, for scale). */
function spawnMs(args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => spawn(process.execPath, args, { stdio: 'ignore' }).once('error', reject).once('exit', () => resolve(performance.now() - t0)));
}

/**
 * The product as deployed (the image's and `npm start`'s `node dist/main.js serve`, compiled,
 * not through tsx) on the snapshot file, directory unreachable: ms from spawn until its
 * "snapshot loaded" log line, the load itself (from that line), and its first "listening".
 */
function serveReady(configFile: string): Promise<{ loadedMs: number; loadMs: number; listeningMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/main.js'), 'serve', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error('rcptgate serve was not ready within 60 s'))), 60_000);
    let out = '';
    let loaded: { at: number; loadMs: number } | null = null;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const at = performance.now() - t0;
      out += chunk;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = JSON.parse(out.slice(0, nl)) as { msg?: string; loadMs?: number };
        out = out.slice(nl + 1);
        if (line.msg === 'snapshot loaded') loaded = { at, loadMs: line.loadMs! };
        if (line.msg?.startsWith('snapshot not loaded')) reject(new Error(JSON.stringify(line)));
        if (line.msg === 'listening' && loaded) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve({ loadedMs: loaded.at, loadMs: loaded.loadMs, listeningMs: at });
        }
      }
    });
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`rcptgate serve exited (${code}) before it was ready`))));
  });
}

/** Compiles the product (as `npm start` does), then times `serve` on the file; medians of `runs`. */
async function productReady(file: string, dir: string, runs = 3): Promise<Record<string, number>> {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  const configFile = path.join(dir, 'serve.yaml');
  await writeFile(
    configFile,
    `listen: { socketmap: "127.0.0.1:0", http: null, policy: null, milter: null, metrics: null }\ndomains: [example.com]\n` +
      `directory: { kind: ldap, ldap: { urls: ["ldap://127.0.0.1:1"], baseDN: "dc=example,dc=com" } }\n` +
      `sync: { enabled: true, snapshotPath: ${JSON.stringify(file)}, maxAge: 1d }\nlog: { level: info }\n`,
  );
  const bare: number[] = [];
  const r: Array<{ loadedMs: number; loadMs: number; listeningMs: number }> = [];
  for (let i = 0; i < runs; i++) {
    bare.push(await spawnMs(['-e', '0']));
    r.push(await serveReady(configFile));
  }
  const listening = median(r.map((x) => x.listeningMs));
  const at = r.find((x) => x.listeningMs === listening)!;
  return { serveReadyMs: listening, serveLoadedMs: at.loadedMs, serveLoadMs: at.loadMs, serveBeforeLoadMs: at.loadedMs - at.loadMs, bareNodeMs: median(bare) };
}

/** V8's young generation as a container would cap it (README: NODE_OPTIONS on a memory limit). */
const SEMI_SPACE_BUDGET = ['--max-semi-space-size=8'];

function child(args: string[], nodeArgs: string[] = []): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', ...nodeArgs, '--import', 'tsx', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const line = (what: string, value: string, target = '') => console.log(`${what.padEnd(52)} ${value.padEnd(34)} ${target}`);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const [, mode, kind, n, where] = argv as [string, string, Kind, string, string];
    const result = mode === 'measure' ? await measure(kind, Number(n), where) : await ready(kind, where, Number(n));
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const n = Number(argv.find((a) => /^\d+$/.test(a)) ?? 1_000_000);
  const baseline = !argv.includes('--no-baseline') && n < 5_000_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-snap-'));
  try {
    const c = child(['--child', 'measure', 'compact', String(n), dir]);
    const cr = child(['--child', 'ready', 'compact', String(n), path.join(dir, 'compact')]);
    const pr = await productReady(path.join(dir, 'compact'), dir);
    // The sync's garbage grows V8's young generation by tens of MB, which V8 keeps after it: the
    // same sync with the semi-space a container budget sets shows what the snapshot itself adds.
    const cb = baseline ? child(['--child', 'measure', 'compact', String(n), dir], SEMI_SPACE_BUDGET) : null;
    const l = baseline ? child(['--child', 'measure', 'legacy', String(n), dir]) : null;
    const lr = baseline ? child(['--child', 'ready', 'legacy', String(n), path.join(dir, 'legacy')]) : null;
    const was = (v: number | undefined, unit: string) => (v === undefined ? '' : ` (was ${v.toFixed(unit === 'µs' ? 2 : 0)} ${unit})`);
    const ratio = c.p50BigMicros! / c.p50SmallMicros!;
    const big = n.toLocaleString('en-US');
    line(`full sync, ${big} generated addresses`, `${c.syncSeconds!.toFixed(1)} s${was(l?.syncSeconds, 's')}`, 'completes: PASS');
    if (baseline) {
      line(`RSS added by the ${big}-address snapshot`, `${c.deltaMB!.toFixed(0)} MB${was(l?.deltaMB, 'MB')}`, `<= 120 MB: ${verdict(c.deltaMB! <= 120)}`);
      line(`  the same with ${SEMI_SPACE_BUDGET.join(' ')}`, `${cb!.deltaMB!.toFixed(0)} MB`, `<= 120 MB: ${verdict(cb!.deltaMB! <= 120)}`);
      line('  the same, loaded from its file (restarted replica)', `${cr.loadedRssMB!.toFixed(0)} MB${was(lr?.loadedRssMB, 'MB')}`, `<= 120 MB: ${verdict(cr.loadedRssMB! <= 120)}`);
      line('process start to snapshot ready (bench child, tsx)', `${cr.readyMs!.toFixed(0)} ms${was(lr?.readyMs, 'ms')}`);
      line('  of which reading the snapshot file', `${cr.loadMs!.toFixed(0)} ms${was(lr?.loadMs, 'ms')}`);
      line(`engine lookup p50, ${big} vs 10,000`, `${c.p50BigMicros!.toFixed(2)} / ${c.p50SmallMicros!.toFixed(2)} µs = ${ratio.toFixed(2)}x`, `<= 1.2x: ${verdict(ratio <= 1.2)}`);
      line('  hits alone; misses alone (never asked before)', `${c.p50HitsBigMicros!.toFixed(2)} / ${c.p50HitsSmallMicros!.toFixed(2)}; ${c.p50MissesBigMicros!.toFixed(2)} / ${c.p50MissesSmallMicros!.toFixed(2)} µs`);
      line('  previous store', `${l!.p50BigMicros!.toFixed(2)} / ${l!.p50SmallMicros!.toFixed(2)} µs = ${(l!.p50BigMicros! / l!.p50SmallMicros!).toFixed(2)}x`);
    } else {
      line('process RSS with the snapshot (peak)', `${c.rssMB!.toFixed(0)} MB (${c.peakRssMB!.toFixed(0)} MB)`, `< 1536 MB: ${verdict(c.peakRssMB! < 1536)}`);
      line('process start to snapshot ready', `${cr.readyMs!.toFixed(0)} ms`);
      line(`engine lookup p50, ${big} vs 10,000`, `${c.p50BigMicros!.toFixed(2)} / ${c.p50SmallMicros!.toFixed(2)} µs = ${ratio.toFixed(2)}x`, `<= 1.5x: ${verdict(ratio <= 1.5)}`);
    }
    line('node dist/main.js serve: start to listening', `${pr.serveReadyMs!.toFixed(0)} ms`, baseline ? `<= 1000 ms: ${verdict(pr.serveReadyMs! <= 1000)}` : '');
    line('  before the load (node, modules, config, app)', `${pr.serveBeforeLoadMs!.toFixed(0)} ms (bare node start ${pr.bareNodeMs!.toFixed(0)} ms)`);
    line('  snapshot load (read, check, adopt)', `${pr.serveLoadMs!.toFixed(0)} ms`);
    line('  snapshot loaded to listening', `${(pr.serveReadyMs! - pr.serveLoadedMs!).toFixed(0)} ms`);
    line('store get(), mean', `${c.getBigNanos!.toFixed(0)} / ${c.getSmallNanos!.toFixed(0)} ns${l ? ` (was ${l.getBigNanos!.toFixed(0)} / ${l.getSmallNanos!.toFixed(0)})` : ''}`);
    const legacy = l ? Object.fromEntries(Object.entries({ ...l, ...lr }).map(([k, v]) => [`legacy${k[0]!.toUpperCase()}${k.slice(1)}`, v])) : {};
    process.stdout.write(JSON.stringify({ ...c, ...cr, ...pr, ...(cb ? { deltaBudgetMB: cb.deltaMB } : {}), ...legacy }) + '\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
