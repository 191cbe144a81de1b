/**
 * The HTTP front end over a real socket, with the real engine on the bundled example LDIF
 * directory: lookups move the counters exactly once each, and /metrics passes the real
 * `promtool check metrics` (Debian package prometheus) with no output at all.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { EXAMPLE_LDIF, LdifDirectory } from '../../src/directory/ldif.js';
import { createHttpApp } from '../../src/http/app.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { HealthReport } from '../../src/recipient/types.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';

function promtoolPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  assert.ok(found.status === 0 && path, 'promtool is missing: install the Debian package "prometheus" (it ships /usr/bin/promtool)');
  return path;
}

/** Feeds `text` to `promtool check metrics`; resolves with its exit code and all its output. */
function promtoolCheck(promtool: string, text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** Value of one sample line, e.g. `rcptgate_lookups_total{frontend="http",verdict="valid"}`; 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('metrics over HTTP with the real engine', () => {
  let server: http.Server;
  let base: string;
  let promtool: string;

  before(async () => {
    promtool = promtoolPath();
    const config = validateConfig({});
    const metrics = new Metrics();
    const logger = silentLogger();
    const validator = new RecipientValidatorImpl({ config, directory: LdifDirectory.fromFile(EXAMPLE_LDIF), metrics, logger });
    const health = (): HealthReport => ({
      ready: true,
      draining: false,
      directory: { kind: 'ldif', up: true, lastSuccessAt: null, lastError: null },
      snapshot: { loaded: false, entries: 0, ageSeconds: null },
      cache: { entries: 0 },
      uptimeSeconds: 0,
      version: 'test',
    });
    const app = createHttpApp({ validator, metrics, logger, health, adminToken: null, version: 'test', statusPage: false });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  it('counts each HTTP lookup once, by verdict, and /metrics passes promtool check metrics silently', async () => {
    const before = await scrape();
    const verdicts: string[] = [];
    for (const address of ['alice@example.com', 'alice@example.com', 'nobody@example.com', 'someone@elsewhere.test', 'not-an-address']) {
      const res = await fetch(`${base}/v1/recipients/${encodeURIComponent(address)}`);
      verdicts.push(((await res.json()) as { verdict: string }).verdict);
    }
    const batch = await fetch(`${base}/v1/recipients:check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ addresses: ['bob@example.com', 'mallory@example.com', 'carol@example.org', 'Alice+tag@Example.COM'] }),
    });
    assert.equal(batch.status, 200);
    verdicts.push(...((await batch.json()) as { results: Array<{ verdict: string }> }).results.map((r) => r.verdict));
    assert.ok(verdicts.includes('valid') && verdicts.includes('unknown') && verdicts.includes('invalid'), verdicts.join(','));

    const afterText = await scrape();
    for (const verdict of ['valid', 'unknown', 'not_ours', 'invalid', 'tempfail']) {
      const series = `rcptgate_lookups_total{frontend="http",verdict="${verdict}"}`;
      const expected = verdicts.filter((v) => v === verdict).length;
      assert.equal(sample(afterText, series) - sample(before, series), expected, series);
    }
    const count = 'rcptgate_lookup_duration_seconds_count{frontend="http"}';
    assert.equal(sample(afterText, count) - sample(before, count), verdicts.length, count);
    const hits = 'rcptgate_cache_events_total{event="hit"}';
    assert.ok(sample(afterText, hits) > sample(before, hits), 'the repeated lookup was a cache hit');

    const { code, output } = await promtoolCheck(promtool, afterText);
    assert.equal(output, '', `promtool check metrics flagged:\n${output}`);
    assert.equal(code, 0);
  });

  it('fails promtool on a metric it should flag (the check is real)', async () => {
    const bad = '# HELP bad_gauge_total A gauge named like a counter.\n# TYPE bad_gauge_total gauge\nbad_gauge_total 1\n';
    const { code, output } = await promtoolCheck(promtool, bad);
    assert.notEqual(code, 0);
    assert.match(output, /bad_gauge_total/);
  });
});
