import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { progressBar, SyncProgressTicker, type SyncProgress } from '../../src/snapshot/progress.js';

describe('full sync progress', () => {
  test('the bar shows entries listed, the expected total, the rate and the time left', () => {
    const p: SyncProgress = { listed: 500_000, expected: 1_000_000, seconds: 10, rate: 50_000, etaSeconds: 10 };
    assert.equal(progressBar(p, 10), '[#####.....] 500,000 / 1,000,000 entries  50,000/s  ETA 10s');
    assert.equal(progressBar({ ...p, expected: null, etaSeconds: null }, 10), '500,000 entries  50,000/s');
  });

  test('reports through the callback and logs a progress line, estimating from the previous size', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
        done();
      },
    });
    const seen: SyncProgress[] = [];
    const ticker = new SyncProgressTicker(4096, createLogger('info', sink), (p) => seen.push(p), 0, 0);
    for (let i = 1; i <= 3000; i++) ticker.tick(i);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen.map((p) => p.listed), [1024, 2048]);
    assert.equal(seen[1]!.expected, 4096);
    assert.ok(seen[1]!.etaSeconds !== null && seen[1]!.etaSeconds >= 0);
    const logged = lines.filter((l) => l.msg === 'full sync in progress');
    assert.deepEqual(logged.map((l) => l.listed), [1024, 2048]);
  });
});
