/**
 * A botnet spread over many client addresses, each staying under the harvest limit: the guard
 * tracks up to 100,000 of them (the default), each with its 20 unknown recipients. Its heap must
 * stay well below what Node gives the whole process in a 512 MiB container (about 259 MB).
 * Grown with push() and shifted, the per-client lists kept room for about twice their entries:
 * 133 MB for the full guard; exact-length lists: 77 MB.
 *
 * The guard is driven directly, as Gate.judge drives it (firstAsk, then recordUnknown): two
 * million RCPTs through a real front end and a real directory are beyond a test's time on this
 * machine, and the heap taken is the guard's whatever front end feeds it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HarvestGuard } from '../../src/gate/harvest.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('100,000 clients with 20 unknown recipients each take under 100 MB of heap', () => {
  gc();
  const before = process.memoryUsage().heapUsed;
  const guard = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000 });
  for (let c = 0; c < 100_000; c++) {
    const client = `10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}`;
    for (let u = 0; u < 20; u++) {
      if (guard.firstAsk(client, `guess${u}-${c}@example.com`)) assert.equal(guard.recordUnknown(client), false);
    }
  }
  gc();
  const mb = (process.memoryUsage().heapUsed - before) / 1e6;
  console.log(`harvest guard: ${guard.size} clients, ${mb.toFixed(1)} MB of heap`);
  assert.equal(guard.size, 100_000);
  assert.ok(mb < 100, `${mb.toFixed(1)} MB`);
  // Still counting: the next unknown of any of them flags it; a repeat does not count.
  assert.equal(guard.firstAsk('10.0.0.7', 'guess3-7@example.com'), false);
  assert.equal(guard.firstAsk('10.0.0.7', 'one-more@example.com'), true);
  assert.equal(guard.recordUnknown('10.0.0.7'), true);
});
