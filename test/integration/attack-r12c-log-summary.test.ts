/**
 * A burst of wrong admin tokens against the real `rcptgate serve`, then silence. Warnings a client
 * can cause are rate-limited (10 lines a minute per kind); the lines left out were reported only
 * on the next line of that kind, so when the burst stopped the log showed 10 wrong tokens out of
 * 200 and never said more: a site without Prometheus could not tell a probe from an attack. Now a
 * line at the end of the minute says how many were left out, matching
 * rcptgate_log_suppressed_total.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';

const BURST = 200;
/** Lines per kind a minute (LogLimiter's default). */
const LINES = 10;

describe('a burst of rate-limited warnings, then silence (real serve)', () => {
  let serve: ServeProcess;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-log-summary-'));
    await writeFile(path.join(dir, 'admin-token'), 'the-admin-token\n');
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      admin: { tokenFile: path.join(dir, 'admin-token') },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', config]);
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the lines left out are counted on a line of their own once the minute ends', async () => {
    const base = `http://127.0.0.1:${await listenerPort(serve, 'http')}`;
    for (let i = 0; i < BURST; i++) {
      const res = await fetch(`${base}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer wrong-${i}` } });
      await res.text();
      assert.equal(res.status, 403);
    }
    const wrong = (): Array<Record<string, unknown>> => serve.logs.filter((l) => l.event === 'http_wrong_token');
    assert.equal(wrong().length, LINES, 'rate-limited while the burst lasts');
    const summary = await serve.waitForLog((l) => l.event === 'http_wrong_token' && typeof l.suppressed === 'number', 90_000);
    assert.equal(summary.suppressed, BURST - LINES, 'every wrong token is accounted for');
    assert.equal(summary.msg, 'admin request with a wrong token');
    assert.ok(!JSON.stringify(serve.logs).includes('the-admin-token'));
    const scrape = await (await fetch(`${base}/metrics`)).text();
    assert.match(scrape, new RegExp(`^rcptgate_log_suppressed_total\\{event="http_wrong_token"\\} ${BURST - LINES}$`, 'm'));
  });
});
