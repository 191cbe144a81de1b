import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import type { Engine } from '../../src/app/engines.js';
import { ProbeLoop } from '../../src/app/probe.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { DirectoryHealth } from '../../src/recipient/health.js';

/** Lets pending promise callbacks run. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('the readiness probe loop', () => {
  it('stays one loop however often it is poked (config reloads)', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let probes = 0;
      const engine = {
        directory: { probe: async () => void probes++ },
        validator: { checkCanaries: async () => undefined },
      } as unknown as Engine;
      const health = new DirectoryHealth({ metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
      const loop = new ProbeLoop(() => engine, health);
      loop.poke();
      await settle();
      for (let i = 0; i < 5; i++) {
        loop.poke(); // what a reload does
        await settle();
      }
      assert.equal(probes, 6);
      assert.equal(loop.scheduled, 1);
      assert.equal(health.state.up, true);
      probes = 0;
      mock.timers.tick(30_000);
      await settle();
      assert.equal(probes, 1, 'one probe per interval after 5 reloads, not 6');
      loop.stop();
      mock.timers.tick(120_000);
      await settle();
      assert.equal(probes, 1);
    } finally {
      mock.timers.reset();
    }
  });
});
