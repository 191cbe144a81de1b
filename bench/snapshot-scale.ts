/**
 * Snapshot mode at scale: bulk-loads N generated users into a private slapd (slapadd), runs one
 * full sync through SnapshotSync + LdapDirectory, reloads the file as a restarted process would,
 * and compares the engine's lookup latency on the big snapshot with a 10,000-address one. The
 * previous release's store and file format (bench/memory/legacy-store.ts), built from the same
 * records, are the baseline in the same run; the targets print PASS or FAIL.
 *
 *   node --import tsx bench/snapshot-scale.ts [--users 1000000] [--lookups 200000] [--page-size 1000]
 *
 * Prints one line per figure. Needs slapd and ldap-utils (Debian). Memory figures are this
 * process's: it holds nothing but the snapshot(s) and the benchmark's own key lists.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../src/config/load.js';
import { LdapDirectory } from '../src/directory/ldap.js';
import { silentLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { SnapshotStore } from '../src/snapshot/store.js';
import { SnapshotSync } from '../src/snapshot/sync.js';
import { RecipientValidatorImpl, type SnapshotView } from '../src/recipient/engine.js';
import { readLegacySnapshot, writeLegacySnapshot } from './memory/legacy-store.js';
import { startSlapd } from '../test/helpers/slapd.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1000000' },
    lookups: { type: 'string', default: '200000' },
    'page-size': { type: 'string', default: '1000' },
  },
});
const USERS = Number(values.users);
const LOOKUPS = Number(values.lookups);
const SMALL = 10_000;

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const secondsSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
const line = (what: string, value: string): void => console.log(`${what.padEnd(44)} ${value}`);

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Engine lookups of present addresses, answered from `store` (a miss is confirmed live, so it would time the directory); µs per lookup. */
async function lookupLatency(engine: RecipientValidatorImpl, store: SnapshotView, users: number): Promise<{ p50: number; p99: number; perSecond: number }> {
  engine.setSnapshot(store);
  const keys: string[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const k = 1 + Math.floor(Math.random() * users);
    keys.push(`user${k}@example.com`);
  }
  for (let i = 0; i < Math.min(20_000, LOOKUPS); i++) await engine.lookup(keys[i]!, { frontend: 'socketmap' }); // warm-up
  const times = new Float64Array(LOOKUPS);
  const wrong: string[] = [];
  const all = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) {
    const t0 = process.hrtime.bigint();
    const r = await engine.lookup(keys[i]!, { frontend: 'socketmap' });
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    if (r.source !== 'snapshot' || r.verdict !== 'valid') wrong.push(`${keys[i]}: ${r.verdict}/${r.source}`);
  }
  const total = secondsSince(all);
  if (wrong.length) throw new Error(`${wrong.length} wrong answers, e.g. ${wrong.slice(0, 3).join(', ')}`);
  times.sort();
  return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: LOOKUPS / total };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-snapshot-'));
  let t0 = process.hrtime.bigint();
  const ldap = await startSlapd({ generatedUsers: USERS, fixture: false });
  const closers: Array<() => Promise<void>> = [() => ldap.close(), () => rm(dir, { recursive: true, force: true })];
  try {
    line(`slapd with ${USERS} users (slapadd + start)`, `${secondsSince(t0).toFixed(1)} s`);
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '30s', pageSize: Number(values['page-size']) } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), maxAge: '1d' },
      log: { level: 'silent' },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const logger = silentLogger();
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger });
    closers.unshift(() => directory.close());

    const rssBefore = process.memoryUsage().rss;
    const sync = new SnapshotSync({ config, directory, metrics, logger, onSnapshot: () => undefined });
    closers.unshift(() => sync.stop());
    t0 = process.hrtime.bigint();
    const report = await sync.full();
    const syncSeconds = secondsSince(t0);
    const big = sync.current!;
    const mem = process.memoryUsage();
    line('full sync', `${syncSeconds.toFixed(2)} s (${Math.round(report.entries / syncSeconds)} entries/s)`);
    line('entries / addresses', `${report.entries} / ${report.addresses}`);
    line('RSS after sync (growth during sync)', `${mb(mem.rss)} (+${mb(mem.rss - rssBefore)})`);
    line('heap used after sync', mb(mem.heapUsed));
    line('peak RSS so far', mb(process.resourceUsage().maxRSS * 1024));
    line('snapshot file size', mb((await stat(config.sync.snapshotPath!)).size));

    // A restarted process: read + verify + index the file, directory not asked.
    const reloaded = new SnapshotSync({ config, directory, metrics, logger, onSnapshot: () => undefined });
    closers.unshift(() => reloaded.stop());
    t0 = process.hrtime.bigint();
    if (!(await reloaded.load())) throw new Error('the snapshot just written did not load');
    const loadSeconds = secondsSince(t0);
    line('load snapshot file (restart)', `${loadSeconds.toFixed(2)} s`);
    const legacyPath = path.join(dir, 'legacy-snapshot');
    await writeLegacySnapshot(legacyPath, 'bench', Date.now(), big.records());
    t0 = process.hrtime.bigint();
    const legacy = await readLegacySnapshot(legacyPath, 86_400_000);
    const legacyLoadSeconds = secondsSince(t0);
    line('  previous store and format (baseline)', `${legacyLoadSeconds.toFixed(2)} s`);

    const engine = new RecipientValidatorImpl({ config, directory, metrics, logger });
    const requestsBefore = (await metrics.directoryRequests.get()).values.reduce((s, v) => s + v.value, 0);
    const small = SnapshotStore.from(
      Array.from({ length: SMALL }, (_, i) => ({ dn: `uid=user${i + 1},ou=people,dc=example,dc=com`, canonical: `user${i + 1}@example.com`, addresses: [`user${i + 1}@example.com`] })),
      Date.now(),
      86_400_000,
    );
    const smallResult = await lookupLatency(engine, small, SMALL);
    const bigResult = await lookupLatency(engine, big, USERS);
    const legacyResult = await lookupLatency(engine, legacy, USERS);
    const requestsAfter = (await metrics.directoryRequests.get()).values.reduce((s, v) => s + v.value, 0);
    if (requestsAfter !== requestsBefore) throw new Error('snapshot lookups asked the directory');
    const fmt = (r: { p50: number; p99: number; perSecond: number }) => `p50 ${r.p50.toFixed(1)} µs, p99 ${r.p99.toFixed(1)} µs, ${Math.round(r.perSecond)} lookups/s`;
    line(`engine lookup, ${SMALL}-address snapshot`, fmt(smallResult));
    line(`engine lookup, ${report.addresses}-address snapshot`, fmt(bigResult));
    line('  previous store (baseline)', fmt(legacyResult));
    const ratio = bigResult.p50 / smallResult.p50;
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    line('target: load <= 1 s', `${loadSeconds.toFixed(2)} s (was ${legacyLoadSeconds.toFixed(2)} s): ${verdict(loadSeconds <= 1)}`);
    line(`target: p50 within ${USERS >= 5_000_000 ? 1.5 : 1.2}x of 10,000`, `${ratio.toFixed(2)}x (was ${(legacyResult.p50 / smallResult.p50).toFixed(2)}x): ${verdict(ratio <= (USERS >= 5_000_000 ? 1.5 : 1.2))}`);
    line('final RSS (synced + reloaded copy + small one)', mb(process.memoryUsage().rss));
  } finally {
    for (const close of closers) await close().catch((err: unknown) => console.error('cleanup failed:', err));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
