/**
 * RcptgateCacheHitRatioCollapsed against what a live rcptgate exports. `cache.maxEntries: 0`
 * disables the cache (README) and every lookup then counts as a cache miss; the alert must not
 * page such a site for as long as it has traffic (it does not: no hit series is exported, so the
 * ratio is undefined). The scrapes of three real runs (HTTP API, bundled example directory) are
 * fed to `promtool test rules` at ten times the run's pace: a disabled cache, a dictionary attack
 * on an enabled one (each guess misses; the domain's key hits: 19 of 40, under half), and
 * repeat lookups.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RULES = path.join(root, 'deploy/prometheus/rcptgate-rules.yaml');
const ALERT = 'RcptgateCacheHitRatioCollapsed';
const LOOKUPS = 20;

const apps: App[] = [];
after(async () => {
  for (const app of apps) await app.close();
});

/** Looks up `addresses` over the real HTTP API; the cache series of the scrape after. */
async function run(maxEntries: number, addresses: string[]): Promise<Array<{ series: string; value: number; gauge: boolean }>> {
  const app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, cache: { maxEntries } });
  apps.push(app);
  const base = `http://127.0.0.1:${app.addresses.http!.port}`;
  for (const a of addresses) assert.equal((await fetch(`${base}/v1/recipients/${a}`)).status, 200);
  const scrape = await (await fetch(`${base}/metrics`)).text();
  return [...scrape.matchAll(/^(rcptgate_cache_(events_total|entries)(?:\{[^}]*\})?) (\S+)$/gm)].map((m) => ({ series: m[1]!, value: Number(m[3]), gauge: m[2] === 'entries' }));
}

/** True when the alert fires at 20m on the series, counters growing each minute by ten times their scraped value. */
async function fires(series: Array<{ series: string; value: number; gauge: boolean }>): Promise<boolean> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-cache-alert-'));
  try {
    const withInstance = (s: string) => (s.includes('{') ? s.replace('{', '{instance="live",') : `${s}{instance="live"}`);
    const input = series.map((s) => `      - series: '${withInstance(s.series)}'\n        values: '${s.gauge ? `${s.value}x40` : `0+${s.value * 10}x40`}'`).join('\n');
    const yaml =
      `rule_files:\n  - ${RULES}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n${input}\n    alert_rule_test:\n` +
      `      - eval_time: 35m\n        alertname: ${ALERT}\n        exp_alerts: []\n`;
    await writeFile(path.join(dir, 'test.yaml'), yaml);
    const r = spawnSync('promtool', ['test', 'rules', 'test.yaml'], { cwd: dir, encoding: 'utf8' });
    if (r.error) throw new Error(`promtool is required (Debian package "prometheus"): ${r.error.message}`);
    if (r.status === 0) return false;
    assert.match(r.stdout + r.stderr, new RegExp(`alertname: ${ALERT}[\\s\\S]*instance="live"`), r.stdout + r.stderr);
    return true;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the cache hit ratio alert against live scrapes (real HTTP API, promtool)', () => {
  test('stays quiet for a disabled cache, fires for a dictionary attack, not for repeat lookups', async () => {
    const disabled = await run(0, Array.from({ length: LOOKUPS }, () => 'alice@example.com'));
    const attack = await run(100_000, Array.from({ length: LOOKUPS }, (_, i) => `guess-${i}@example.com`));
    const repeat = await run(100_000, Array.from({ length: LOOKUPS }, () => 'alice@example.com'));
    assert.ok(disabled.some((s) => s.series.includes('event="miss"') && s.value === LOOKUPS), `a disabled cache counts misses: ${JSON.stringify(disabled)}`);
    assert.equal(await fires(disabled), false, `no alert for cache.maxEntries: 0: ${JSON.stringify(disabled)}`);
    assert.equal(await fires(attack), true, `a dictionary attack fires it: ${JSON.stringify(attack)}`);
    assert.equal(await fires(repeat), false, `repeat lookups are hits: ${JSON.stringify(repeat)}`);
  });
});
