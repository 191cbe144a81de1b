import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Engine } from '../../src/app/engines.js';
import { healthReport } from '../../src/app/health-report.js';
import { silentLogger } from '../../src/log.js';
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
