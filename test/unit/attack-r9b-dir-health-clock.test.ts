/**
 * The "directory is failing" / "directory is answering" lines are limited to 10 a minute each.
 * That minute was measured on the wall clock: stepped back (an NTP step after a boot with a wrong
 * RTC), the window did not start again until the clock caught up, so a directory that kept
 * failing and recovering logged nothing for the size of the step. Only the clocks are fakes.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, describe, mock, test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { DirectoryHealth } from '../../src/recipient/health.js';

describe('directory transition lines when the wall clock steps back', () => {
  afterEach(() => mock.restoreAll());

  test('are logged again a minute of real time after their burst', () => {
    const realNow = Date.now.bind(Date);
    const realPerf = performance.now.bind(performance);
    let wallStep = 0;
    let elapsed = 0;
    mock.method(Date, 'now', () => realNow() - wallStep);
    mock.method(performance, 'now', () => realPerf() + elapsed);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()).msg as string);
        done();
      },
    });
    const health = new DirectoryHealth({ metrics: new Metrics({ defaultMetrics: false }), logger: createLogger('info', sink) });
    const flap = (times: number) => {
      for (let i = 0; i < times; i++) {
        health.failed(new Error('connection lost'));
        health.answered();
      }
    };
    flap(15);
    const failing = () => lines.filter((l) => l === 'directory is failing').length;
    assert.equal(failing(), 10, 'the burst');
    // The clock steps back an hour; a minute and a bit of real time passes.
    wallStep = 3_600_000;
    elapsed = 61_000;
    flap(3);
    assert.ok(failing() > 10, 'no "directory is failing" line a minute after the burst');
  });
});
