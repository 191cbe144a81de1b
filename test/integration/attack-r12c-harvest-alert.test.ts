/**
 * The harvest alert and dashboard against what a live rcptgate exports during a harvest. A client
 * sends unknown recipients through the real policy listener until harvest protection engages,
 * once with the default `policy.harvest.action` (tarpit) and once with `reject`. The series the
 * scrape then holds (names and labels as exported) are fed to `promtool test rules` at an attack's
 * rate: RcptgateHarvestBlocksSpiking must fire for both. It watched only
 * rcptgate_harvest_blocked_total, which the default tarpit never counts: under the default config
 * the alert could not fire, and the dashboard did not show the attack either.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, policyActions, policyRequest, readUntilClose } from '../helpers/frontend-clients.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RULES = path.join(root, 'deploy/prometheus/rcptgate-rules.yaml');
const CLIENT = '198.51.100.7';
/** Default policy.harvest.maxUnknown. */
const MAX_UNKNOWN = 20;

const apps: App[] = [];
after(async () => {
  for (const app of apps) await app.close();
});

/** One policy request on its own connection; the action the real listener answered. */
async function ask(port: number, recipient: string): Promise<string> {
  const s = await connectFrom(port);
  const replies = readUntilClose(s);
  s.end(policyRequest(recipient, CLIENT));
  return policyActions(await replies)[0] ?? '(none)';
}

/** Harvests the bundled example directory through the policy listener; the /metrics text after. */
async function harvest(action: 'tarpit' | 'reject' | null): Promise<{ actions: string[]; scrape: string; ms: number }> {
  const app = await startApp({
    listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: '127.0.0.1:0' },
    ...(action === null ? {} : { policy: { harvest: { action } } }),
  });
  apps.push(app);
  const port = app.addresses.policy!.port;
  for (let i = 0; i < MAX_UNKNOWN; i++) await ask(port, `ghost-${i}@example.com`);
  const began = Date.now();
  // Past the limit: a few more at once, as a harvester keeps going.
  const actions = await Promise.all(Array.from({ length: 4 }, (_, i) => ask(port, `ghost-more-${i}@example.com`)));
  const ms = Date.now() - began;
  const scrape = await (await fetch(`http://127.0.0.1:${app.addresses.metrics!.port}/metrics`)).text();
  return { actions, scrape, ms };
}

/** The exported rcptgate_harvest_* series: `name{labels}` and value. */
function harvestSeries(scrape: string): Array<{ series: string; value: number }> {
  return [...scrape.matchAll(/^(rcptgate_harvest_[a-z_]+\{[^}]*\}) (\S+)$/gm)].map((m) => ({ series: m[1]!, value: Number(m[2]) }));
}

/** Runs promtool on the rules with `series` growing `perMinute` each minute; the alerts firing at 10m. */
async function alertFires(series: string[], perMinute: number): Promise<boolean> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-harvest-alert-'));
  try {
    const input = series.map((s) => `      - series: '${s.replace('{', '{instance="live",')}'\n        values: '0+${perMinute}x20'`).join('\n');
    const expected = `          - exp_labels: { severity: info, instance: live }`;
    const yaml = (exp: string) =>
      `rule_files:\n  - ${RULES}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n${input}\n    alert_rule_test:\n` +
      `      - eval_time: 10m\n        alertname: RcptgateHarvestBlocksSpiking\n        exp_alerts:${exp}\n`;
    // promtool checks labels and annotations of expected alerts: test "fires" against "silent"
    // and keep only the labels (the annotations are the rules file's business).
    await writeFile(path.join(dir, 'silent.yaml'), yaml(' []'));
    const silent = spawnSync('promtool', ['test', 'rules', 'silent.yaml'], { cwd: dir, encoding: 'utf8' });
    if (silent.error) throw new Error(`promtool is required (Debian package "prometheus"): ${silent.error.message}`);
    if (silent.status === 0) return false;
    assert.match(silent.stdout + silent.stderr, /alertname: RcptgateHarvestBlocksSpiking[\s\S]*instance="live"/, silent.stdout + silent.stderr);
    return true;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the harvest alert against a live harvest (real policy listener, promtool)', () => {
  test('fires for the series the default tarpit exports, and for reject mode; not at a trickle', async () => {
    const tarpit = await harvest(null);
    // The attack happened: the flagged client's answers were held back, none refused.
    assert.ok(tarpit.actions.every((a) => /^550 /.test(a)), `tarpit answers unknown, slowly: ${tarpit.actions.join(' | ')}`);
    assert.ok(tarpit.ms >= 900, `flagged answers were delayed (${tarpit.ms} ms)`);
    const delayed = harvestSeries(tarpit.scrape);
    assert.ok(delayed.length > 0 && delayed.every((s) => s.value > 0), `harvest series exported under the default config:\n${tarpit.scrape}`);

    const reject = await harvest('reject');
    assert.ok(reject.actions.every((a) => /^421 /.test(a)), `reject mode refuses: ${reject.actions.join(' | ')}`);
    const blocked = harvestSeries(reject.scrape);
    assert.ok(blocked.length > 0);

    // Two held-back recipients a second, sustained, is an attack in either mode; half one is not.
    assert.equal(await alertFires(delayed.map((s) => s.series), 120), true, `RcptgateHarvestBlocksSpiking fires on ${delayed.map((s) => s.series).join(', ')}`);
    assert.equal(await alertFires(blocked.map((s) => s.series), 120), true, `RcptgateHarvestBlocksSpiking fires on ${blocked.map((s) => s.series).join(', ')}`);
    assert.equal(await alertFires(delayed.map((s) => s.series), 30), false, 'a trickle does not page');
  });

  test('the dashboard shows every harvest metric a harvest exports, in either mode', async () => {
    const dashboard = await readFile(path.join(root, 'deploy/grafana/rcptgate.json'), 'utf8');
    const exprs = [...dashboard.matchAll(/"expr": "([^"\\]*(?:\\.[^"\\]*)*)"/g)].map((m) => m[1]!);
    for (const action of [null, 'reject'] as const) {
      const { scrape } = await harvest(action);
      const names = new Set(harvestSeries(scrape).map((s) => s.series.slice(0, s.series.indexOf('{'))));
      assert.ok(names.size > 0);
      for (const name of names) assert.ok(exprs.some((e) => e.includes(name)), `the dashboard has no query of ${name} (exported with action ${action ?? 'tarpit (default)'})`);
    }
  });
});
