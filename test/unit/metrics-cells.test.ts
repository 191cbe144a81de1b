/**
 * The hot-path metric cells (src/metrics.ts) write into prom-client's own series storage, an
 * internal of prom-client 15. These tests pin that: after an upgrade that changes the storage,
 * they fail instead of the metrics going silently wrong.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/metrics.js';

/** What prom-client's public API records for the same observations, as exported text. */
async function reference(observations: Array<[string, string, number]>): Promise<string> {
  const registry = new Registry();
  const m = new Metrics({ defaultMetrics: false });
  const lookups = new Counter({ name: 'rcptgate_lookups_total', help: (await m.lookups.get()).help, labelNames: ['frontend', 'verdict'], registers: [registry] });
  const duration = new Histogram({
    name: 'rcptgate_lookup_duration_seconds',
    help: (await m.lookupDuration.get()).help,
    labelNames: ['frontend'],
    buckets: (m.lookupDuration as unknown as { upperBounds: number[] }).upperBounds,
    registers: [registry],
  });
  for (const [frontend, verdict, seconds] of observations) {
    lookups.inc({ frontend, verdict });
    duration.observe({ frontend }, seconds);
  }
  return registry.metrics();
}

const OBSERVATIONS: Array<[string, string, number]> = [
  ['socketmap', 'valid', 0.00004],
  ['socketmap', 'valid', 0.002],
  ['socketmap', 'unknown', 0.7],
  ['policy', 'tempfail', 3.2],
  ['socketmap', 'valid', 12],
];

describe('metrics cells on the hot path', () => {
  it('export exactly what prom-client would for the same lookups', async () => {
    const m = new Metrics({ defaultMetrics: false });
    for (const [frontend, verdict, seconds] of OBSERVATIONS) m.recordLookup(frontend as never, verdict as never, seconds);
    const ours = (await m.registry.getSingleMetricAsString('rcptgate_lookups_total')) + '\n' + (await m.registry.getSingleMetricAsString('rcptgate_lookup_duration_seconds'));
    const ref = await reference(OBSERVATIONS);
    for (const line of ours.split('\n').filter((l) => l && !l.startsWith('#'))) assert.ok(ref.includes(line), `prom-client would not export: ${line}`);
    assert.match(ours, /rcptgate_lookups_total\{frontend="socketmap",verdict="valid"\} 3/);
    assert.match(ours, /rcptgate_lookup_duration_seconds_count\{frontend="socketmap"\} 4/);
  });

  it('keep counting after a registry reset', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.recordLookup('socketmap', 'valid', 0.001);
    m.registry.resetMetrics();
    m.recordLookup('socketmap', 'valid', 0.001);
    m.recordLookup('socketmap', 'valid', 0.001);
    m.cacheEvent('hit');
    const text = await m.registry.metrics();
    assert.match(text, /rcptgate_lookups_total\{frontend="socketmap",verdict="valid"\} 2\n/);
    assert.match(text, /rcptgate_cache_events_total\{event="hit"\} 1\n/);
  });
});
