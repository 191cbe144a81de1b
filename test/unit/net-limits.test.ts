import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import request from 'supertest';
import { createHttpApp } from '../../src/http/app.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LogLimiter } from '../../src/net/log-limiter.js';
import { type Peer, PeerTable } from '../../src/net/peers.js';
import { FakeValidator, healthReport } from '../helpers/http-fakes.js';

function captured() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger('info', sink) };
}

async function suppressed(metrics: Metrics, event: string): Promise<number> {
  return (await metrics.logSuppressed.get()).values.find((v) => v.labels.event === event)?.value ?? 0;
}

describe('LogLimiter', () => {
  it('logs `burst` lines per event and interval, counts the rest, and reports them on the next line', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const clock = { t: 0 };
    const limiter = new LogLimiter(metrics, { burst: 3, intervalMs: 1000, now: () => clock.t });
    const { lines, logger } = captured();
    for (let i = 0; i < 100; i++) limiter.warn(logger, 'bad_frame', { i }, 'bad frame');
    limiter.warn(logger, 'other', {}, 'other event');
    assert.equal(lines.filter((l) => l['msg'] === 'bad frame').length, 3);
    assert.equal(lines.filter((l) => l['msg'] === 'other event').length, 1, 'each event has its own budget');
    assert.equal(await suppressed(metrics, 'bad_frame'), 97);
    clock.t += 1000;
    limiter.warn(logger, 'bad_frame', {}, 'bad frame');
    assert.equal(lines.at(-1)!['suppressed'], 97);
  });
});

describe('PeerTable', () => {
  it('caps connections per address and frees the entry when the last one goes', () => {
    const table = new PeerTable({ maxConnections: 2, maxOutstanding: 1, maxTotalOutstanding: 100 });
    const a = table.admit('192.0.2.1')!;
    assert.equal(table.admit('192.0.2.1'), a);
    assert.equal(table.admit('192.0.2.1'), null);
    assert.ok(table.admit('192.0.2.2'), 'another address is not affected');
    table.leave(a);
    table.leave(a);
    assert.equal(table.size, 1);
  });

  it('keeps counting lookups of closed connections until they finish, and wakes waiters', () => {
    const table = new PeerTable({ maxConnections: 5, maxOutstanding: 1, maxTotalOutstanding: 100 });
    const p = table.admit('192.0.2.1')!;
    p.acquire();
    assert.equal(p.full, true);
    let woken = 0;
    p.wait(() => woken++);
    table.leave(p);
    // Reconnecting does not escape the share while the old lookup runs.
    assert.equal(table.admit('192.0.2.1'), p);
    assert.equal(p.full, true);
    p.release();
    assert.equal(woken, 1);
    assert.equal(p.full, false);
  });
});

describe('Peer wake-ups', () => {
  it('a finished request wakes one waiting connection, in turns of 16, not every waiting one', () => {
    const table = new PeerTable({ maxConnections: 300, maxOutstanding: 1, maxTotalOutstanding: 100 });
    const p = table.admit('192.0.2.1')!;
    p.acquire();
    // 200 paused connections; a woken one starts a request and, with more to do, waits again.
    const woken: number[] = [];
    for (let i = 0; i < 200; i++) {
      const wake = (): void => {
        woken.push(i);
        p.acquire();
        p.wait(wake);
      };
      p.wait(wake);
    }
    const releases = 200 * 16 + 16;
    for (let round = 0; round < releases; round++) p.release();
    // Waking all 200 at every release made a 200-connection flood burn the CPU other clients need.
    assert.equal(woken.length, releases, 'one wake-up per release');
    // Each connection keeps its turn for 16 places (its replies share a write), then the next.
    const expected = [...Array.from({ length: 200 }, (_, i) => Array<number>(16).fill(i)).flat(), ...Array<number>(16).fill(0)];
    assert.deepEqual(woken, expected);
  });

  it('a woken connection that cannot use the room passes it on to the next', () => {
    const table = new PeerTable({ maxConnections: 5, maxOutstanding: 1, maxTotalOutstanding: 100 });
    const p = table.admit('192.0.2.1')!;
    p.acquire();
    const calls: string[] = [];
    p.wait(() => calls.push('blocked')); // e.g. its own pipeline is full: starts nothing
    p.wait(() => {
      calls.push('starts');
      p.acquire();
    });
    p.release();
    assert.deepEqual(calls, ['blocked', 'starts']);
    assert.equal(p.outstanding, 1);
  });
});

describe('turns between clients', () => {
  /** A connection with endless requests: each wake starts one, then it waits again. */
  function busyConnection(peer: Peer, name: string, started: string[]): () => void {
    const wake = (): void => {
      started.push(name);
      peer.acquire();
      if (peer.full) peer.wait(wake);
    };
    return wake;
  }

  it("the listener's room goes round the waiting clients, and a client with nothing in progress starts at once", () => {
    const table = new PeerTable({ maxConnections: 300, maxOutstanding: 100, maxTotalOutstanding: 4 });
    const flood = table.admit('192.0.2.1')!;
    const other = table.admit('192.0.2.2')!;
    for (let i = 0; i < 4; i++) flood.acquire();
    assert.equal(flood.full, true, 'the flood holds the whole room');
    assert.equal(other.full, false, 'a client with nothing in progress may start one anyway');
    flood.release();
    other.acquire();
    assert.equal(other.full, true, 'its second request waits for a turn');
    const started: string[] = [];
    flood.wait(busyConnection(flood, 'flood', started));
    other.wait(busyConnection(other, 'other', started));
    // Each freed place goes to the client that has waited longest: the flood cannot take them all.
    for (let i = 0; i < 4; i++) flood.release();
    assert.deepEqual(started, ['flood', 'other', 'flood', 'other']);
    assert.equal(table.outstanding, 4);
  });

  it('a client at its own limit leaves the line and queues again at its own release', () => {
    const table = new PeerTable({ maxConnections: 300, maxOutstanding: 2, maxTotalOutstanding: 3 });
    const a = table.admit('192.0.2.1')!;
    const b = table.admit('192.0.2.2')!;
    a.acquire();
    a.acquire();
    b.acquire();
    const started: string[] = [];
    a.wait(busyConnection(a, 'a', started));
    b.wait(busyConnection(b, 'b', started));
    a.release(); // a queues behind b, which has waited longer
    assert.deepEqual(started, ['b']);
    b.release(); // b is at its own limit again; it queues behind a
    assert.deepEqual(started, ['b', 'a']);
    assert.equal(table.outstanding, 3);
  });
});

describe('HTTP wrong tokens', () => {
  it('are logged at a limited rate and the rest counted in rcptgate_log_suppressed_total', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const { lines, logger } = captured();
    const app = createHttpApp({
      validator: new FakeValidator({}),
      metrics,
      logger,
      health: () => healthReport(),
      adminToken: 'right-token',
      version: 'test',
      statusPage: false,
      logLimiter: new LogLimiter(metrics),
    });
    const agent = request(app);
    for (let i = 0; i < 30; i++) await agent.delete('/v1/cache').set('Authorization', 'Bearer wrong').expect(403);
    assert.equal(lines.filter((l) => l['msg'] === 'admin request with a wrong token').length, 10);
    assert.equal(await suppressed(metrics, 'http_wrong_token'), 20);
  });

  it('on the lookup API are logged at a limited rate too (one line per request before)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const { lines, logger } = captured();
    const app = createHttpApp({
      validator: new FakeValidator({}),
      metrics,
      logger,
      health: () => healthReport(),
      adminToken: 'right-token',
      lookupAccess: { token: 'lookup-token', allowFrom: [] },
      version: 'test',
      statusPage: false,
      logLimiter: new LogLimiter(metrics),
    });
    const agent = request(app);
    for (let i = 0; i < 30; i++) await agent.get('/v1/recipients/alice@example.com').set('Authorization', 'Bearer wrong').expect(403);
    await agent.post('/v1/recipients:check').set('Authorization', 'Bearer wrong').send({ addresses: ['a@example.com'] }).expect(403);
    assert.equal(lines.filter((l) => l['msg'] === 'lookup request with a wrong token').length, 10);
    assert.equal(await suppressed(metrics, 'http_lookup_wrong_token'), 21);
  });
});
