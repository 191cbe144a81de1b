import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { Engine } from '../../src/app/engines.js';
import { healthReport } from '../../src/app/health-report.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { DirectoryHealth } from '../../src/recipient/health.js';

function engineWith(health: DirectoryHealth): Engine {
  return { directory: { kind: 'ldap' }, validator: { state: health.state, cacheSize: 0 } } as unknown as Engine;
}

describe('health report reasonCode', () => {
  const report = (health: DirectoryHealth, draining = false) => healthReport({ engine: engineWith(health), snapshot: null, draining, startedAt: Date.now() });
  const fresh = () => new DirectoryHealth({ metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });

  it('waiting_for_directory until the directory answers, then none', () => {
    const h = fresh();
    assert.equal(report(h).reasonCode, 'waiting_for_directory');
    assert.equal(report(h).ready, false);
    h.answered();
    assert.equal(report(h).reasonCode, undefined);
    assert.equal(report(h).reason, undefined);
  });

  it('directory_down after an outage, ready all the same; canary_missing while a canary is missing; draining first', () => {
    const h = fresh();
    h.answered();
    h.failed(new Error('connect ECONNREFUSED'));
    assert.deepEqual([report(h).ready, report(h).reasonCode], [true, 'directory_down']);
    h.answered();
    h.canaries(['canary@example.com']);
    assert.deepEqual([report(h).ready, report(h).reasonCode, report(h).directory.up], [true, 'canary_missing', false]);
    assert.equal(report(h, true).reasonCode, 'draining');
  });
});

describe('directory health lines', () => {
  it('a directory failing every other request logs ten transitions a minute, not two lines per failure', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const clock = { t: 0 };
    const health = new DirectoryHealth({ metrics, logger: createLogger('info', sink), now: () => clock.t });
    for (let i = 0; i < 1000; i++) {
      health.failed(new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `search failed ${i}`));
      assert.equal(health.state.up, false);
      health.answered();
      assert.equal(health.state.up, true, 'the state itself follows every answer');
    }
    const count = (msg: string) => lines.filter((l) => l['msg'] === msg).length;
    assert.equal(count('directory is failing'), 10);
    assert.equal(count('directory is answering'), 10);
    const suppressed = (await metrics.logSuppressed.get()).values;
    assert.deepEqual(Object.fromEntries(suppressed.map((v) => [v.labels.event, v.value])), { directory_failing: 990, directory_answering: 990 });
    clock.t += 60_000;
    health.failed(new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'later'));
    assert.equal(lines.at(-1)!['suppressed'], 990, 'the next minute says how many were left out');
  });
});
