import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function promtool(args: string[], cwd = root) {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is required (Debian package "prometheus"): ${r.error.message}`);
  return r;
}

test('alert rules pass promtool check rules', () => {
  const r = promtool(['check', 'rules', 'deploy/prometheus/rcptgate-rules.yaml']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS: 8 rules found/);
});

test('alert rules fire as the promtool unit tests expect', () => {
  const r = promtool(['test', 'rules', 'rules-test.yaml'], `${root}test/fixtures/prometheus`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS/);
});

test('every alert has a runbook section', () => {
  const rules = [...readFileSync(`${root}deploy/prometheus/rcptgate-rules.yaml`, 'utf8').matchAll(/alert: (\w+)/g)].map((m) => m[1]!);
  assert.equal(rules.length, 8);
  const runbook = readFileSync(`${root}docs/runbook.md`, 'utf8');
  for (const name of rules) assert.match(runbook, new RegExp(`^## ${name}$`, 'm'), `docs/runbook.md lacks a section for ${name}`);
});
