/**
 * Memory and snapshot figures (the scripts in bench/memory/ are the snapshot store's). When
 * bench/memory/snapshot.ts reports the previous store's figures beside its own (legacy*), the
 * snapshot targets are checked against them and the 10,000,000-address run is added. A script
 * whose JSON line carries `rows` (report rows with their own baselines and targets) has those
 * rows added as they are.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Context } from '../lib/context.js';
import { ROOT } from '../lib/procs.js';
import { fmt, type Row } from '../lib/report.js';

/** The heap budget of a container (the chart's NODE_OPTIONS example). */
export const HEAP_BUDGET = ['--max-semi-space-size=8', '--max-old-space-size=384'];

type Json = Record<string, number> & { rows?: Row[] };

function runJson(script: string, args: string[], nodeArgs: string[] = [], timeoutMs = 300_000): Promise<Json> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', ...nodeArgs, '--import', 'tsx', path.join(ROOT, 'bench', script), ...args], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${script}: ${err.message} ${stderr.slice(-1000)}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Json);
    });
  });
}

/** Real LDAP sync of the whole benchmark slapd through `rcptgate sync`, seconds. */
async function ldapSync(ctx: Context): Promise<number> {
  const syncCfg = path.join(ctx.dir, 'sync.yaml');
  const pwFile = path.join(ctx.dir, 'service.pw');
  await writeFile(pwFile, ctx.slapd.servicePassword, { mode: 0o600 });
  await writeFile(
    syncCfg,
    `listen: { http: null, socketmap: null, policy: null, milter: null }\ndomains: [example.com]\ndirectory: { kind: ldap, ldap: { urls: ["${ctx.slapd.url}"], baseDN: "${ctx.slapd.baseDN}", bindDN: "${ctx.slapd.serviceDN}", bindPasswordFile: "${pwFile}", timeout: 30s } }\nsync: { enabled: true, snapshotPath: "${path.join(ctx.dir, 'snapshot.json')}" }\nlog: { level: warn }\n`,
  );
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), 'sync', '--config', syncCfg], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return Number(/seconds=([\d.]+)/.exec(out)?.[1] ?? NaN);
}

export async function memoryScenario(ctx: Context, users: number): Promise<void> {
  const rows = ctx.rows;
  ctx.log('memory: rcptgate sync of the benchmark slapd');
  const syncSeconds = await ldapSync(ctx);
  rows.push({ section: 'memory', what: `snapshot sync, ${users.toLocaleString('en-US')} users from slapd (rcptgate sync CLI)`, value: syncSeconds, unit: 's' });
  ctx.log('memory: cache with 1,000,000 entries (child process)');
  const cache = await runJson('memory/cache-rss.ts', ['1000000']);
  rows.push({
    section: 'memory',
    what: 'RSS, engine with 1,000,000 cached answers, default V8 heap sizing',
    value: cache.rssMB!,
    unit: 'MB',
    baseline: { name: 'empty engine RSS', value: cache.rssBeforeMB! },
    note: `heap used ${fmt(cache.heapUsedMB!)} MB of ${fmt(cache.heapTotalMB!)} MB, fill ${fmt(cache.fillSeconds!)} s; V8 sizes its heap from the ${fmt(os.totalmem() / 1024 ** 3)} GiB of this machine`,
  });
  const budget = await runJson('memory/cache-rss.ts', ['1000000'], HEAP_BUDGET);
  rows.push({
    section: 'memory',
    what: `RSS, engine with 1,000,000 cached answers, node ${HEAP_BUDGET.join(' ')}`,
    value: budget.rssMB!,
    unit: 'MB',
    baseline: { name: 'empty engine RSS', value: budget.rssBeforeMB! },
    note: `heap used ${fmt(budget.heapUsedMB!)} MB of ${fmt(budget.heapTotalMB!)} MB, fill ${fmt(budget.fillSeconds!)} s`,
    target: { text: '≤ 400 MB', pass: budget.rssMB! <= 400 },
  });
  ctx.log('memory: snapshot of 1,000,000 addresses (child process)');
  const snap = await runJson('memory/snapshot.ts', ['1000000']);
  if (snap.rows) {
    rows.push(...snap.rows.map((r) => ({ ...r, section: 'memory' })));
    return;
  }
  if (snap.legacyDeltaMB !== undefined) {
    await compactStoreRows(ctx, snap);
    return;
  }
  rows.push({ section: 'memory', what: 'snapshot sync, 1,000,000 generated addresses (store + file)', value: snap.syncSeconds!, unit: 's', baseline: { name: '10,000-address sync', value: snap.syncSecondsSmall! } });
  rows.push({ section: 'memory', what: 'RSS with the 1,000,000-address snapshot', value: snap.rssMB!, unit: 'MB', note: `+${fmt(snap.deltaMB!)} MB for the snapshot` });
  rows.push({
    section: 'memory',
    what: 'engine lookup p50, 1,000,000-address snapshot',
    value: snap.p50BigMicros!,
    unit: 'µs',
    baseline: { name: '10,000-address p50', value: snap.p50SmallMicros! },
    target: { text: '≤ 1.2× 10,000', pass: snap.p50BigMicros! <= 1.2 * snap.p50SmallMicros! },
  });
  rows.push({ section: 'memory', what: 'SnapshotStore.get(), 1,000,000 addresses (mean)', value: snap.getBigNanos!, unit: 'ns', baseline: { name: '10,000 addresses', value: snap.getSmallNanos! } });
}

/**
 * The snapshot targets of the compact store, when bench/memory/snapshot.ts measured it against
 * the previous (Map-based) store in the same run, plus its 10,000,000-address run.
 */
async function compactStoreRows(ctx: Context, snap: Json): Promise<void> {
  const rows = ctx.rows;
  const was = (name: string) => ({ name: 'previous store', value: snap[name]! });
  rows.push({ section: 'memory', what: 'snapshot sync, 1,000,000 generated addresses', value: snap.syncSeconds!, unit: 's', baseline: was('legacySyncSeconds') });
  rows.push({ section: 'memory', what: 'RSS added by the 1,000,000-address snapshot', value: snap.deltaMB!, unit: 'MB', baseline: was('legacyDeltaMB'), target: { text: '≤ 120 MB', pass: snap.deltaMB! <= 120 } });
  rows.push({ section: 'memory', what: 'the same, loaded from its file (restarted replica)', value: snap.loadedRssMB!, unit: 'MB', baseline: was('legacyLoadedRssMB'), target: { text: '≤ 120 MB', pass: snap.loadedRssMB! <= 120 } });
  rows.push({
    section: 'memory',
    what: 'process start to ready (listening, snapshot loaded), 1,000,000 addresses: `node dist/main.js serve`',
    value: snap.serveReadyMs!,
    unit: 'ms',
    baseline: { name: 'previous store (bench child through tsx)', value: snap.legacyReadyMs! },
    note: `${fmt(snap.serveBeforeLoadMs!)} ms node start, modules, config and app (bare node ${fmt(snap.bareNodeMs!)}); ${fmt(snap.serveLoadMs!)} ms the snapshot load; bench child through tsx: ${fmt(snap.readyMs!)} ms, of which the load ${fmt(snap.loadMs!)} (previous store ${fmt(snap.legacyLoadMs!)})`,
    target: { text: '≤ 1,000 ms', pass: snap.serveReadyMs! <= 1000 },
  });
  rows.push({
    section: 'memory',
    what: 'engine lookup p50, 1,000,000-address snapshot',
    value: snap.p50BigMicros!,
    unit: 'µs',
    baseline: { name: '10,000-address p50', value: snap.p50SmallMicros! },
    note: `70 % hits, misses never asked before in both; hits alone ${fmt(snap.p50HitsBigMicros!)} / ${fmt(snap.p50HitsSmallMicros!)} µs, misses alone ${fmt(snap.p50MissesBigMicros!)} / ${fmt(snap.p50MissesSmallMicros!)} µs; previous store ${fmt(snap.legacyP50BigMicros!)} / ${fmt(snap.legacyP50SmallMicros!)} µs`,
    target: { text: '≤ 1.2× 10,000', pass: snap.p50BigMicros! <= 1.2 * snap.p50SmallMicros! },
  });
  ctx.log('memory: snapshot of 10,000,000 addresses (child process)');
  const ten = await runJson('memory/snapshot.ts', ['10000000', '--no-baseline'], [], 900_000);
  rows.push({ section: 'memory', what: 'snapshot sync, 10,000,000 generated addresses', value: ten.syncSeconds!, unit: 's', target: { text: 'completes', pass: Number.isFinite(ten.syncSeconds) } });
  rows.push({ section: 'memory', what: 'peak RSS with the 10,000,000-address snapshot', value: ten.peakRssMB!, unit: 'MB', target: { text: '< 1,536 MB', pass: ten.peakRssMB! < 1536 } });
  rows.push({
    section: 'memory',
    what: 'engine lookup p50, 10,000,000-address snapshot',
    value: ten.p50BigMicros!,
    unit: 'µs',
    baseline: { name: '10,000-address p50', value: ten.p50SmallMicros! },
    target: { text: '≤ 1.5× 10,000', pass: ten.p50BigMicros! <= 1.5 * ten.p50SmallMicros! },
  });
}
