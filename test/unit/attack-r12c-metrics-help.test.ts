/**
 * The HELP text /metrics serves names every label value the README's metrics table lists: an
 * operator reading a scrape learns from it which outcomes exist. Two had fallen behind the code:
 * rcptgate_directory_requests_total lacked `partial` and rcptgate_sync_refused_total `canary`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Metrics } from '../../src/metrics.js';
import { REPO_ROOT } from '../helpers/process.js';

test('every label value the README lists for a metric is named in its HELP', async () => {
  const readme = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
  const rows = [...readme.matchAll(/^\| `(rcptgate_[a-z_]+)` \| \w+ \| [a-z, ]*?\b([a-z]+) = ([a-z_, ]+?)(?: \(|\s*\|)/gm)];
  assert.ok(rows.length >= 6, `only ${rows.length} rows with listed label values found in the README`);
  const text = await new Metrics({ defaultMetrics: false }).render();
  const missing: string[] = [];
  for (const [, name, label, values] of rows) {
    const help = new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(text)?.[1];
    assert.ok(help, `${name} has a HELP line`);
    for (const v of values!.split(',').map((x) => x.trim())) if (!new RegExp(`\\b${v}\\b`).test(help)) missing.push(`${name} ${label}=${v}`);
  }
  assert.deepEqual(missing, []);
});
