/**
 * The shared connection pipeline, through the socketmap front end with a fake engine whose
 * lookups wait until released: what one connection and one client address may start at once.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import type { LookupResult, RecipientValidator } from '../../src/recipient/types.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { connectFrom, netstring, netstrings, sleep } from '../helpers/frontend-clients.js';

/** Lookups stay pending until `release()`; counts how many run at once. */
class GatedValidator implements RecipientValidator {
  running = 0;
  maxRunning = 0;
  started = 0;
  /** Addresses in the order their lookups started. */
  readonly order: string[] = [];
  private waiting: Array<() => void> = [];
  async lookup(address: string): Promise<LookupResult> {
    this.started++;
    this.order.push(address);
    this.maxRunning = Math.max(this.maxRunning, ++this.running);
    await new Promise<void>((r) => this.waiting.push(r));
    this.running--;
    return { address, verdict: 'unknown', source: 'directory', ttlSeconds: 0 };
  }
  release(): void {
    for (const r of this.waiting.splice(0)) r();
  }
  /** Lets the `n` oldest running lookups finish. */
  releaseOldest(n: number): void {
    for (const r of this.waiting.splice(0, n)) r();
  }
  isServedDomain() {
    return true;
  }
  servedDomain(d: string) {
    return d;
  }
  flush() {
    return 0;
  }
}

describe('connection pipeline', () => {
  const servers: TcpServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close(100))));

  async function serve(validator: GatedValidator, limits: { maxPipeline?: number; maxOutstandingPerClient?: number; maxOutstanding?: number }) {
    const server = createSocketmapServer({ validator, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), maxConnections: 50, idleTimeoutMs: 60_000, ...limits });
    servers.push(server);
    return (await server.listen('127.0.0.1:0')).port;
  }

  it('starts at most maxPipeline lookups from one read of 2,000 requests, and answers all of them', async () => {
    const v = new GatedValidator();
    const port = await serve(v, { maxPipeline: 16 });
    const s = await connectFrom(port);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.write(Array.from({ length: 2_000 }, (_, i) => netstring(`recipients u${i}@example.com`)).join(''));
    await sleep(200);
    assert.equal(v.started, 16, 'the bound is checked per request, not after the whole read');
    while (netstrings(Buffer.concat(chunks)).length < 2_000) {
      v.release();
      await sleep(5);
    }
    assert.ok(v.maxRunning <= 16, `at most 16 at once (${v.maxRunning})`);
    assert.deepEqual(new Set(netstrings(Buffer.concat(chunks))), new Set(['NOTFOUND ']));
    s.destroy();
  });

  it('shares maxOutstandingPerClient among the connections of one address, and another address is not held up', async () => {
    const v = new GatedValidator();
    const port = await serve(v, { maxPipeline: 64, maxOutstandingPerClient: 8 });
    const flooders = await Promise.all(Array.from({ length: 4 }, () => connectFrom(port, '127.0.0.1')));
    for (const f of flooders) f.write(Array.from({ length: 50 }, (_, i) => netstring(`recipients f${i}@example.com`)).join(''));
    await sleep(200);
    assert.equal(v.running, 8, 'one address: 8 lookups at once over its 4 connections');
    const other = await connectFrom(port, '127.0.0.2');
    other.write(netstring('recipients honest@example.com'));
    await sleep(100);
    assert.equal(v.running, 9, 'another address starts its lookup at once');
    for (const f of [...flooders, other]) f.destroy();
    v.release();
  });

  it('one address flooding from 20 connections holds at most server.maxOutstanding; a one-connection client starts at once and then takes turns with it', async () => {
    const v = new GatedValidator();
    const port = await serve(v, { maxPipeline: 64, maxOutstanding: 8 });
    const flooders = await Promise.all(Array.from({ length: 20 }, () => connectFrom(port, '127.0.0.1')));
    flooders.forEach((f, c) => f.write(Array.from({ length: 50 }, (_, i) => netstring(`recipients f${c}-${i}@example.com`)).join('')));
    await sleep(200);
    // Without turns the flood would hold its whole per-client share (256) and the directory's time.
    assert.equal(v.running, 8, 'the flood fills the listener room, no more');
    const other = await connectFrom(port, '127.0.0.2');
    other.write(netstring('recipients o1@example.com') + netstring('recipients o2@example.com'));
    await sleep(100);
    assert.equal(v.order.at(-1), 'o1@example.com', 'a client with nothing in progress starts at once');
    assert.equal(v.running, 9);
    const before = v.order.length;
    for (let i = 0; i < 4 && !v.order.includes('o2@example.com'); i++) {
      v.releaseOldest(1);
      await sleep(50);
    }
    const between = v.order.slice(before);
    assert.ok(between.includes('o2@example.com'), `o2 got a turn: ${between.join(' ')}`);
    assert.ok(between.indexOf('o2@example.com') <= 1, `at most one flood lookup went first: ${between.join(' ')}`);
    for (const f of [...flooders, other]) f.destroy();
    v.release();
  });

  it('closing the listener: requests waiting for their turn are dropped, the ones started are answered, and close() does not wait out drainMs', async () => {
    const v = new GatedValidator();
    const server = createSocketmapServer({ validator: v, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), maxConnections: 50, idleTimeoutMs: 60_000, maxOutstanding: 1 });
    const { port } = await server.listen('127.0.0.1:0');
    const running = await connectFrom(port, '127.0.0.2');
    const waiting = await connectFrom(port, '127.0.0.2');
    const answers = (s: typeof running) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      return new Promise<string[]>((r) => s.once('close', () => r(netstrings(Buffer.concat(chunks)))));
    };
    const [ran, waited] = [answers(running), answers(waiting)];
    running.write(netstring('recipients first@example.com'));
    while (v.started < 1) await sleep(5);
    waiting.write(['a', 'b', 'c'].map((x) => netstring(`recipients ${x}@example.com`)).join(''));
    await sleep(100);
    assert.equal(v.started, 1, 'the second connection waits for its turn');
    const started = Date.now();
    const closed = server.close(10_000);
    await sleep(50);
    v.release();
    await closed;
    assert.ok(Date.now() - started < 5_000, `close() took ${Date.now() - started} ms`);
    assert.deepEqual(await ran, ['NOTFOUND ']);
    assert.deepEqual(await waited, []);
    assert.equal(v.started, 1, 'nothing started after close()');
  });
});
