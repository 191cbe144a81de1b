import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { parseHostPort, TcpServer, type ConnectionHandler } from '../../src/net/tcp-server.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';

const servers: TcpServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close(100)));
});

async function start(handler: ConnectionHandler, opts: { maxConnections?: number; idleTimeoutMs?: number } = {}) {
  const metrics = new Metrics({ defaultMetrics: false });
  const server = new TcpServer({
    frontend: 'socketmap',
    metrics,
    logger: silentLogger(),
    maxConnections: opts.maxConnections ?? 100,
    idleTimeoutMs: opts.idleTimeoutMs ?? 0,
    handler,
  });
  servers.push(server);
  const addr = await server.listen('127.0.0.1:0');
  return { server, metrics, port: addr.port };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** Collects everything a socket receives until it closes. */
function readAll(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('close', () => resolve(data));
  });
}

function readOnce(s: net.Socket): Promise<string> {
  return new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
}

async function gauge(metrics: Metrics): Promise<number> {
  const v = (await metrics.connections.get()).values.find((x) => x.labels.frontend === 'socketmap');
  return v?.value ?? 0;
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Echo each chunk back, upper-cased, reporting busy/idle around the write. */
const echo: ConnectionHandler = (ctx) => {
  ctx.socket.on('data', (d: Buffer) => {
    ctx.busy();
    ctx.socket.write(d.toString().toUpperCase());
    ctx.idle();
  });
};

describe('parseHostPort', () => {
  it('splits host:port and bracketed IPv6', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:9465'), { host: '127.0.0.1', port: 9465 });
    assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseHostPort('localhost:25'), { host: 'localhost', port: 25 });
  });
  it('rejects malformed values', () => {
    for (const bad of ['127.0.0.1', ':25', 'host:99999', 'host:', 'a b:1']) {
      assert.throws(() => parseHostPort(bad), TypeError, bad);
    }
  });
});

describe('TcpServer', () => {
  it('listens on port 0, resolves the bound address and hands each socket to the handler', async () => {
    const { server, port } = await start(echo);
    assert.ok(port > 0);
    assert.equal(server.address()?.port, port);
    const c = await connect(port);
    const reply = readOnce(c);
    c.write('hello');
    assert.equal(await reply, 'HELLO');
    c.destroy();
  });

  it('gives each connection its own id and peer address', async () => {
    const seen: Array<{ id: number; remote: string }> = [];
    const { port } = await start((ctx) => {
      seen.push({ id: ctx.id, remote: ctx.remote });
      ctx.socket.end();
    });
    const a = await connect(port);
    const b = await connect(port);
    await Promise.all([readAll(a), readAll(b)]);
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0]!.id, seen[1]!.id);
    for (const s of seen) assert.match(s.remote, /^127\.0\.0\.1:\d+$/);
  });

  it('tracks open connections in the rcptgate_connections gauge', async () => {
    const { server, metrics, port } = await start(echo);
    const a = await connect(port);
    const b = await connect(port);
    await until(() => server.connectionCount === 2, 'two connections');
    assert.equal(await gauge(metrics), 2);
    a.destroy();
    b.destroy();
    await until(() => server.connectionCount === 0, 'connections gone');
    assert.equal(await gauge(metrics), 0);
  });

  it('refuses connections over maxConnections at once and counts them', async () => {
    const { server, metrics, port } = await start(echo, { maxConnections: 2 });
    const a = await connect(port);
    const b = await connect(port);
    await until(() => server.connectionCount === 2, 'two connections');
    const extra = await connect(port);
    const extraData = await readAll(extra);
    assert.equal(extraData, '');
    const rejected = (await metrics.connectionsRejected.get()).values[0]?.value;
    assert.equal(rejected, 1);
    // The admitted ones still work.
    const reply = readOnce(a);
    a.write('still here');
    assert.equal(await reply, 'STILL HERE');
    a.destroy();
    b.destroy();
  });

  it('closes a connection that stays idle past idleTimeoutMs', async () => {
    const { server, port } = await start(echo, { idleTimeoutMs: 50 });
    const c = await connect(port);
    const closed = readAll(c);
    await closed; // resolves only because the server closed it
    await until(() => server.connectionCount === 0, 'connection gone');
  });

  it('waits for a busy connection to answer before closing it on idle timeout', async () => {
    const { port } = await start(
      (ctx) => {
        ctx.socket.on('data', () => {
          ctx.busy();
          setTimeout(() => {
            ctx.socket.write('late answer');
            ctx.idle();
          }, 150);
        });
      },
      { idleTimeoutMs: 30 },
    );
    const c = await connect(port);
    const all = readAll(c);
    c.write('q');
    assert.equal(await all, 'late answer');
  });

  it('survives peers that reset the connection', async () => {
    const { server, port } = await start((ctx) => {
      ctx.socket.on('data', () => {
        // Keep writing into a socket the peer has reset.
        const t = setInterval(() => {
          if (ctx.socket.destroyed) return clearInterval(t);
          ctx.socket.write('x'.repeat(65536));
        }, 1);
      });
    });
    for (let i = 0; i < 5; i++) {
      const c = await connect(port);
      c.write('go');
      await new Promise((r) => setTimeout(r, 10));
      c.resetAndDestroy();
    }
    await until(() => server.connectionCount === 0, 'connections gone');
    const c = await connect(port);
    c.destroy();
  });

  it('destroys the connection when the handler throws, and keeps serving', async () => {
    let calls = 0;
    const { port } = await start((ctx) => {
      calls++;
      if (calls === 1) throw new Error('boom');
      echo(ctx);
    });
    const first = await connect(port);
    await readAll(first);
    const second = await connect(port);
    const reply = readOnce(second);
    second.write('ok');
    assert.equal(await reply, 'OK');
    second.destroy();
  });

  it('rejects listen() when the port is taken', async () => {
    const { port } = await start(echo);
    const other = new TcpServer({
      frontend: 'policy',
      metrics: new Metrics({ defaultMetrics: false }),
      logger: silentLogger(),
      maxConnections: 1,
      idleTimeoutMs: 0,
      handler: echo,
    });
    await assert.rejects(other.listen(`127.0.0.1:${port}`), /EADDRINUSE/);
    await other.close(10);
  });

  describe('close(drainMs)', () => {
    it('stops accepting and closes idle connections at once', async () => {
      const { server, port } = await start(echo);
      const c = await connect(port);
      await until(() => server.connectionCount === 1, 'connection');
      const closedData = readAll(c);
      await server.close(60_000); // would hang for a minute if the idle socket were not closed
      assert.equal(await closedData, '');
      await assert.rejects(connect(port), /ECONNREFUSED/);
    });

    it('lets a busy connection write its current answer, then closes it', async () => {
      let started!: () => void;
      const inFlight = new Promise<void>((r) => (started = r));
      const { server, port } = await start((ctx) => {
        ctx.socket.on('data', () => {
          ctx.busy();
          started();
          setTimeout(() => {
            ctx.socket.write('answer');
            ctx.idle();
          }, 100);
        });
      });
      const c = await connect(port);
      const all = readAll(c);
      c.write('question');
      await inFlight;
      await server.close(60_000);
      assert.equal(await all, 'answer');
    });

    it('stops reading new requests from a draining connection', async () => {
      const answered: string[] = [];
      let started!: () => void;
      const inFlight = new Promise<void>((r) => (started = r));
      const { server, port } = await start((ctx) => {
        ctx.socket.on('data', (d: Buffer) => {
          if (ctx.draining) return;
          ctx.busy();
          answered.push(d.toString());
          started();
          setTimeout(() => {
            ctx.socket.write('a');
            ctx.idle();
          }, 100);
        });
      });
      const c = await connect(port);
      const all = readAll(c);
      c.write('first');
      await inFlight;
      const closing = server.close(60_000);
      c.write('second');
      await closing;
      assert.equal(await all, 'a');
      assert.deepEqual(answered, ['first']);
    });

    it('destroys connections still busy after drainMs', async () => {
      const { server, port } = await start((ctx) => {
        ctx.socket.on('data', () => ctx.busy()); // never answers
      });
      const c = await connect(port);
      const all = readAll(c);
      c.write('hang');
      await until(() => server.connectionCount === 1, 'connection');
      await new Promise((r) => setTimeout(r, 20));
      await server.close(50);
      assert.equal(await all, '');
      assert.equal(server.connectionCount, 0);
    });

    it('is idempotent', async () => {
      const { server } = await start(echo);
      const a = server.close(10);
      const b = server.close(10);
      assert.equal(a, b);
      await a;
    });
  });
});

describe('TcpServer closing a peer that never reads', () => {
  it('destroys the connection when the flush before FIN does not finish within requestTimeoutMs', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const server = new TcpServer({
      frontend: 'policy',
      metrics,
      logger: silentLogger(),
      maxConnections: 10,
      idleTimeoutMs: 0,
      requestTimeoutMs: 300,
      handler: (ctx) => {
        // Far more than the socket buffers hold, then a graceful close.
        ctx.socket.write(Buffer.alloc(32 * 1024 * 1024));
        ctx.close();
      },
    });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1:0');
    const s = await connect(port);
    s.pause(); // never read
    const started = Date.now();
    await until(() => server.connectionCount === 0, 'the connection to be destroyed');
    assert.ok(Date.now() - started < 3_000);
    s.destroy();
  });
});
