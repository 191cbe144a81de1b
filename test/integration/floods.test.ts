/**
 * Floods against the real app on real sockets (the fast variant; `npm run soak` does 1,000,000):
 *  - 50,000 distinct random addresses over socketmap: the cache never holds more than
 *    cache.maxEntries and the service keeps answering;
 *  - 500 connection attempts per socket listener with server.maxConnections 200: at most 200
 *    are kept, the rest refused, and the listener still serves afterwards;
 *  - a client trickling one byte a second is closed by the idle timeout (socketmap, policy)
 *    or the header timeout (HTTP).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startApp } from '../helpers/app.js';

const MAX_ENTRIES = 10_000;
const FLOOD = 50_000;
const MAX_CONNECTIONS = 200;
const ATTEMPTS = 500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The soft open-files limit of this process (Linux), to fail with a clear message instead of EMFILE. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
  } catch {
    return 1024;
  }
}

function appWith(overrides: Record<string, unknown>): Promise<App> {
  return startApp(
    {
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
      log: { level: 'silent' },
      ...overrides,
    },
    process.env,
  );
}

async function metric(app: App, name: string, labels: string): Promise<number> {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(await app.metrics.registry.metrics());
  return m ? Number(m[1]) : 0;
}

describe('cache flood', () => {
  let app: App;
  before(async () => {
    app = await appWith({ cache: { maxEntries: MAX_ENTRIES } });
  });
  after(() => app.close());

  test(`${FLOOD.toLocaleString('en')} distinct random addresses never grow the cache past cache.maxEntries`, async () => {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const clients = await Promise.all(Array.from({ length: 8 }, () => SocketmapClient.connect(app.addresses.socketmap!.port)));
    let maxSeen = 0;
    let answered = 0;
    try {
      const perClient = FLOOD / clients.length;
      await Promise.all(
        clients.map(async (client, c) => {
          for (let sent = 0; sent < perClient; sent += 200) {
            const batch = Array.from({ length: Math.min(200, perClient - sent) }, (_, i) => client.query('recipients', `flood-${c}-${sent + i}-${Math.random().toString(36).slice(2)}@example.com`));
            const replies = await Promise.all(batch);
            answered += replies.filter((r) => r === 'NOTFOUND ').length;
            maxSeen = Math.max(maxSeen, app.health().cache.entries);
          }
        }),
      );
    } finally {
      for (const c of clients) c.close();
      delay.disable();
    }
    assert.equal(answered, FLOOD, 'every random address answered NOTFOUND');
    assert.ok(maxSeen <= MAX_ENTRIES, `cache held ${maxSeen} entries, maxEntries ${MAX_ENTRIES}`);
    assert.ok(maxSeen >= MAX_ENTRIES * 0.9, `the flood did fill the cache (${maxSeen})`);
    assert.ok((await metric(app, 'rcptgate_cache_events_total', 'event="evict"')) >= FLOOD - MAX_ENTRIES, 'old entries were evicted');
    // Still answering correctly after the flood.
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);
    } finally {
      client.close();
    }
    console.log(`cache flood: ${FLOOD} addresses, cache max ${maxSeen}, event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`);
  });
});

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

describe('connection floods', () => {
  let app: App;
  before(async () => {
    app = await appWith({ server: { maxConnections: MAX_CONNECTIONS, idleTimeout: '5m' } });
  });
  after(() => app.close());

  for (const frontend of ['socketmap', 'policy', 'milter'] as const) {
    test(`${ATTEMPTS} idle connections to ${frontend}: at most ${MAX_CONNECTIONS} kept, the rest refused, no crash`, async () => {
      const needed = ATTEMPTS * 2 + 200; // both ends live in this process
      assert.ok(openFileLimit() >= needed, `this test needs ulimit -n ≥ ${needed} (have ${openFileLimit()})`);
      // The idle timeout of this app is short; the connections must outlive the count.
      const port = app.addresses[frontend]!.port;
      const sockets: net.Socket[] = [];
      let closedByServer = 0;
      try {
        await Promise.all(
          Array.from(
            { length: ATTEMPTS },
            () =>
              new Promise<void>((resolve) => {
                const s = net.connect({ port, host: '127.0.0.1' });
                sockets.push(s);
                s.on('error', () => undefined);
                s.once('close', () => closedByServer++);
                s.once('connect', () => resolve());
                s.once('error', () => resolve());
              }),
          ),
        );
        // Connects complete in the kernel before the server's accept runs: wait for the refusals.
        await until('the excess connections are refused', async () => closedByServer >= ATTEMPTS - MAX_CONNECTIONS);
        await sleep(200);
        const open = sockets.filter((s) => !s.destroyed && !s.readableEnded).length;
        assert.equal(open, MAX_CONNECTIONS, `connections kept open, cap ${MAX_CONNECTIONS}`);
        assert.equal(closedByServer, ATTEMPTS - MAX_CONNECTIONS);
        assert.equal(await metric(app, 'rcptgate_connections', `frontend="${frontend}"`), MAX_CONNECTIONS);
        assert.equal(await metric(app, 'rcptgate_connections_rejected_total', `frontend="${frontend}"`), ATTEMPTS - MAX_CONNECTIONS);
      } finally {
        for (const s of sockets) s.destroy();
      }
      // Once they are gone, the listener serves again.
      await until('the server saw every client close', async () => (await metric(app, 'rcptgate_connections', `frontend="${frontend}"`)) === 0);
      if (frontend === 'socketmap') {
        const c = await SocketmapClient.connect(port);
        try {
          assert.match(await c.query('recipients', 'alice@example.com'), /^OK /);
        } finally {
          c.close();
        }
      } else {
        const s = net.connect({ port, host: '127.0.0.1' });
        await new Promise<void>((resolve, reject) => {
          s.once('connect', resolve);
          s.once('error', reject);
        });
        const closed = await Promise.race([new Promise((r) => s.once('close', () => r(true))), sleep(100).then(() => false)]);
        s.destroy();
        assert.equal(closed, false, 'a new connection is accepted after the flood');
      }
    });
  }

});

describe('slow clients', () => {
  let app: App;
  before(async () => {
    app = await appWith({ server: { maxConnections: MAX_CONNECTIONS, idleTimeout: '800ms' } });
  });
  after(() => app.close());

  test('clients trickling one byte a second are closed: idle timeout (socketmap, policy), header timeout (HTTP)', { timeout: 120_000 }, async () => {
    const trickle: Record<string, { port: number; bytes: string; boundMs: number }> = {
      socketmap: { port: app.addresses.socketmap!.port, bytes: '33:recipients alice@example.com,', boundMs: 5_000 },
      policy: { port: app.addresses.policy!.port, bytes: 'request=smtpd_access_policy\nprotocol_state=RCPT\n', boundMs: 5_000 },
      // Node checks header timeouts every connectionsCheckingInterval (30 s by default) after headersTimeout (10 s).
      http: { port: app.addresses.http!.port, bytes: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', boundMs: 60_000 },
    };
    const results = await Promise.all(
      Object.entries(trickle).map(async ([frontend, { port, bytes, boundMs }]) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        const started = Date.now();
        const closed = new Promise<number>((r) => s.once('close', () => r(Date.now() - started)));
        let i = 0;
        const drip = () => {
          if (!s.destroyed && s.writable) s.write(bytes[i++ % bytes.length]!);
        };
        s.once('connect', drip);
        const timer = setInterval(drip, 1_000);
        const ms = await Promise.race([closed, sleep(boundMs).then(() => -1)]);
        clearInterval(timer);
        s.destroy();
        return { frontend, ms, sent: i };
      }),
    );
    for (const r of results) assert.ok(r.ms >= 0, `${r.frontend}: a one-byte-a-second client was still connected after ${trickle[r.frontend]!.boundMs} ms`);
    console.log(`slow clients closed after: ${results.map((r) => `${r.frontend} ${r.ms} ms (${r.sent} bytes)`).join(', ')}`);
  });
});
