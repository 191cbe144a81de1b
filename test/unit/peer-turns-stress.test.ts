/**
 * Turns at the engine under a mixed crowd of clients on real sockets: four client addresses, 60
 * connections each opening five times in a row; they pipeline up to 40 requests and then either
 * read everything, half-close, close mid-turn, or stop reading for a while. With a tiny room
 * (`maxOutstanding` 2, `maxOutstandingPerClient` 3, `maxPipeline` 2) every freed place is handed
 * on in turn many thousand times; a lost wake-up shows as a live connection that is never
 * answered. The engine is a stand-in (random delays, half the answers at hand): the real one
 * cannot be made to answer in a chosen order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LookupResult, RecipientValidator } from '../../src/recipient/types.js';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { connectFrom, netstring, sleep } from '../helpers/frontend-clients.js';

function random(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

type Mode = 'read' | 'half-close' | 'close' | 'stall';

test('no waiting connection is forgotten: every request on a live connection is answered, and the turn table empties', { timeout: 120_000 }, async () => {
  const rnd = random(9);
  const answer = (address: string): LookupResult => ({ address, verdict: 'valid', source: 'directory', ttlSeconds: 0 });
  const validator: RecipientValidator & { lookupNow(a: string): LookupResult | undefined } = {
    lookup: (address) => new Promise((r) => setTimeout(() => r(answer(address)), rnd() < 0.1 ? 50 : rnd() * 5)),
    lookupNow: (address) => (rnd() < 0.5 ? answer(address) : undefined),
    isServedDomain: () => true,
    servedDomain: (d) => d,
    flush: () => 0,
  };
  const server = createSocketmapServer({ validator, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), maxConnections: 2000, idleTimeoutMs: 0, maxOutstanding: 2, maxOutstandingPerClient: 3, maxPipeline: 2 });
  const { port } = await server.listen('127.0.0.1:0');
  const problems: string[] = [];
  try {
    const client = async (c: number) => {
      const peer = `127.0.0.${2 + (c % 4)}`;
      for (let round = 0; round < 5; round++) {
        const s = await connectFrom(port, peer);
        const n = 1 + Math.floor(rnd() * 40);
        const mode: Mode = (['read', 'read', 'read', 'half-close', 'close', 'stall'] as const)[Math.floor(rnd() * 6)]!;
        let got = 0;
        s.on('data', (d: Buffer) => {
          for (const b of d) if (b === 0x2c) got++;
        });
        const closed = new Promise<void>((r) => s.once('close', () => r()));
        const payload = Array.from({ length: n }, (_, i) => netstring(`recipients u${c}-${round}-${i}@example.com`)).join('');
        if (mode === 'close') {
          s.write(payload);
          await sleep(rnd() * 20);
          s.destroy();
          continue;
        }
        if (mode === 'stall') s.pause();
        if (mode === 'half-close') s.end(payload);
        else s.write(payload);
        if (mode === 'stall') {
          await sleep(200);
          s.resume();
        }
        const deadline = Date.now() + 20_000;
        while (got < n && !s.closed && Date.now() < deadline) await sleep(5);
        if (got < n) problems.push(`${peer} connection ${c}/${round} (${mode}): ${got} of ${n} answers${s.closed ? ', closed' : ''}`);
        s.destroy();
        await closed;
      }
    };
    await Promise.all(Array.from({ length: 60 }, (_, c) => client(c)));
    await sleep(200);
  } finally {
    await server.close(100);
  }
  assert.deepEqual(problems, []);
  const table = (server as unknown as { peers: { outstanding: number; size: number } }).peers;
  assert.equal(table.outstanding, 0, 'lookups still counted in progress');
  assert.equal(table.size, 0, 'client entries left behind');
});
