/**
 * /metrics on listen.http now answers the lookup API's clients only (loopback by default). A site
 * whose Prometheus on another host scraped listen.http, with no token and listen.metrics off,
 * loses every scrape on upgrade, and the shipped alert rules have no rule for a target that
 * stopped answering: every rcptgate alert goes quiet. `config check` already noted that such an
 * exposed listen.http answers lookups to loopback only, a note such a site had no reason to heed
 * before; it now names /metrics and listen.metrics. The real CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

function configCheck(cfg: string): { code: number | null; out: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', '--config', cfg], { cwd: REPO_ROOT, env: base, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stderr + r.stdout };
}

describe('config check: /metrics on an exposed listen.http (real CLI)', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'rcptgate-r12h-metrics-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const metrics of ['null', '"127.0.0.1:9468"']) {
    test(`with listen.metrics ${metrics}, the note says /metrics there answers loopback only and how to scrape from elsewhere`, () => {
      const cfg = path.join(dir, 'exposed.yaml');
      writeFileSync(cfg, `listen: { socketmap: null, http: "0.0.0.0:8080", policy: null, milter: null, metrics: ${metrics} }\n`);
      const r = configCheck(cfg);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /http\.lookupTokenFile.*the lookup API and \/metrics answer loopback clients only/);
      assert.match(r.out, /or put listen\.metrics on an address Prometheus reaches/);
    });
  }

  test('with listen.metrics exposed, the note is about the lookup API alone', () => {
    const cfg = path.join(dir, 'metrics.yaml');
    writeFileSync(cfg, 'listen: { socketmap: null, http: "0.0.0.0:8080", policy: null, milter: null, metrics: "0.0.0.0:9468" }\n');
    const r = configCheck(cfg);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /http\.lookupTokenFile.*the lookup API answers loopback clients only/);
    assert.doesNotMatch(r.out, /\/metrics answer/);
  });
});
