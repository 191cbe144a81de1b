import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = `${root}test-artifacts`;

function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p;
  throw new Error('chromium is required for the status page test (Debian package "chromium")');
}

/** Metric names used in PromQL expressions (rcptgate_* only; suffixes of histograms stripped). */
function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/\b(rcptgate_[a-z_]+)/g)) names.add(m[1]!.replace(/_(bucket|sum|count)$/, ''));
  return names;
}

/** Sum of every series of a metric in Prometheus text format. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('operator kit against a live rcptgate', () => {
  let app: App;
  let base: string;
  let browser: Browser;

  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null } }, process.env);
    base = `http://127.0.0.1:${app.addresses.http!.port}`;
    browser = await chromium.launch({
      executablePath: chromiumPath(),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });

  test('every metric the dashboard and the alert rules query is exported by /metrics', async () => {
    for (const a of ['alice@example.com', 'nobody@example.com']) await fetch(`${base}/v1/recipients/${a}`);
    const scrape = await (await fetch(`${base}/metrics`)).text();
    const exported = new Set([...scrape.matchAll(/^# TYPE (rcptgate_[a-z_]+) /gm)].map((m) => m[1]!));
    const dashboard = readFileSync(`${root}deploy/grafana/rcptgate.json`, 'utf8');
    JSON.parse(dashboard);
    const rules = readFileSync(`${root}deploy/prometheus/rcptgate-rules.yaml`, 'utf8');
    const used = new Set([...metricNames(dashboard), ...metricNames(rules)]);
    assert.ok(used.size >= 10, `only ${used.size} metric names found in the dashboard and rules`);
    for (const name of used) assert.ok(exported.has(name), `${name} is queried but not exported`);
  });

  test('the status page shows the live figures and health, no lookup form, under a strict CSP', async () => {
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text());
    });
    try {
      const response = await page.goto(`${base}/`);
      assert.equal(response?.status(), 200);
      assert.match(response!.headers()['content-security-policy'] ?? '', /default-src 'none'/);
      assert.equal(await page.locator('h1').textContent(), 'rcptgate');

      // Figures on the page agree with /metrics scraped right after.
      const shownValid = Number(await page.locator('#lookups td[data-key="valid"]').textContent());
      const shownUnknown = Number(await page.locator('#lookups td[data-key="unknown"]').textContent());
      const scrape = await (await fetch(`${base}/metrics`)).text();
      assert.equal(shownValid, metricSum(scrape, 'rcptgate_lookups_total', { verdict: 'valid' }));
      assert.equal(shownUnknown, metricSum(scrape, 'rcptgate_lookups_total', { verdict: 'unknown' }));
      assert.equal(await page.locator('#status td[data-key="Directory"]').textContent(), 'ldif, up');

      // Health only: no lookup form (it was a harvest oracle showing DNs and filters).
      assert.equal(await page.locator('form, input').count(), 0);
      assert.equal(await page.locator('#status td[data-key="Reason"]').textContent(), 'none');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/status-page.png`, fullPage: true });

      // Lookups through the API are counted like any other.
      assert.equal((await fetch(`${base}/v1/recipients/no-such-user%40example.com`)).status, 200);
      await page.goto(`${base}/`);
      assert.equal(Number(await page.locator('#lookups td[data-key="unknown"]').textContent()), shownUnknown + 1);
      assert.deepEqual(violations, []);
    } finally {
      await page.close();
    }
  });
});
