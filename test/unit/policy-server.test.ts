import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { createPolicyServer } from '../../src/policy/server.js';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { FakeValidator, byLocalPart } from '../helpers/fake-validator.js';


function request(attrs: Record<string, string>): string {
  const all = { request: 'smtpd_access_policy', protocol_state: 'RCPT', client_address: '192.0.2.1', ...attrs };
  return Object.entries(all).map(([k, v]) => `${k}=${v}\n`).join('') + '\n';
}

/** One client connection that collects `action=` replies. */
class PolicyClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed: Promise<void>;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = once(socket, 'close').then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async connect(port: number): Promise<PolicyClient> {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return new PolicyClient(s);
  }
  /** Next n replies (the action values). */
  async replies(n: number): Promise<string[]> {
    for (;;) {
      const parts = this.buf.split('\n\n');
      if (parts.length - 1 >= n) {
        this.buf = parts.slice(n).join('\n\n');
        return parts.slice(0, n).map((p) => p.replace(/^action=/, ''));
      }
      if (this.socket.destroyed) throw new Error(`connection closed after ${parts.length - 1} replies`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  async ask(attrs: Record<string, string>): Promise<string> {
    this.socket.write(request(attrs));
    return (await this.replies(1))[0]!;
  }
}

describe('policy server', () => {
  const validator = new FakeValidator(byLocalPart('invalid'), { served: null });
  const metrics = new Metrics({ defaultMetrics: false });
  const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
  let server: TcpServer;
  let port: number;
  const clients: PolicyClient[] = [];
  const connect = async () => {
    const c = await PolicyClient.connect(port);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = createPolicyServer({ validator, metrics, logger: silentLogger(), harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    port = (await server.listen('127.0.0.1:0')).port;
  });
  after(async () => {
    for (const c of clients) c.socket.destroy();
    await server.close(100);
  });

  it('answers DUNNO for a valid recipient', async () => {
    assert.equal(await (await connect()).ask({ recipient: 'valid@example.com' }), 'DUNNO');
  });

  it('rejects an unknown recipient with 550 5.1.1', async () => {
    assert.equal(await (await connect()).ask({ recipient: 'unknown1@example.com' }), '550 5.1.1 User unknown');
  });

  it('defers with 451 4.3.0 when the lookup fails', async () => {
    assert.equal(await (await connect()).ask({ recipient: 'temp@example.com' }), '451 4.3.0 Recipient address lookup failed, try again later');
  });

  it('defers, never rejects, when the validator throws', async () => {
    assert.match(await (await connect()).ask({ recipient: 'throw@example.com' }), /^451 4\.3\.0 /);
  });

  it('answers DUNNO for not_ours recipients and invalid ones outside our domains, 501 5.1.3 for invalid ones inside', async () => {
    const c = await connect();
    assert.equal(await c.ask({ recipient: 'other@elsewhere.example' }), 'DUNNO');
    assert.equal(await c.ask({ recipient: 'bad' }), 'DUNNO');
    // In a served domain an invalid address is refused (same connection: the server allows 10).
    assert.equal(await c.ask({ recipient: 'bad..dots@example.com' }), '501 5.1.3 Bad recipient address syntax');
  });

  it('answers DUNNO in every other protocol state without asking the engine', async () => {
    const c = await connect();
    const before = validator.addresses.length;
    for (const state of ['CONNECT', 'EHLO', 'MAIL', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN']) {
      assert.equal(await c.ask({ protocol_state: state, recipient: 'unknown9@example.com' }), 'DUNNO');
    }
    assert.equal(validator.addresses.length, before);
  });

  it('ignores attributes it does not know', async () => {
    assert.equal(await (await connect()).ask({ recipient: 'valid@example.com', future_attribute: 'x=y', ccert_subject: '' }), 'DUNNO');
  });

  it('answers pipelined requests in order even when an earlier one is slower', async () => {
    const c = await connect();
    c.socket.write(request({ recipient: 'unknown-slow@example.com' }) + request({ recipient: 'valid@example.com' }) + request({ recipient: 'temp@example.com' }));
    const [a, b, d] = await c.replies(3);
    assert.match(a!, /^550 /);
    assert.equal(b, 'DUNNO');
    assert.match(d!, /^451 /);
  });

  it('closes a connection that sends a malformed request and keeps serving the others', async () => {
    const good = await connect();
    const bad = await connect();
    const errorsBefore = (await metrics.protocolErrors.get()).values.find((v) => v.labels.frontend === 'policy')?.value ?? 0;
    bad.socket.write('this is not a policy request\n');
    await bad.closed;
    assert.equal(await good.ask({ recipient: 'valid@example.com' }), 'DUNNO');
    const errorsAfter = (await metrics.protocolErrors.get()).values.find((v) => v.labels.frontend === 'policy')?.value ?? 0;
    assert.equal(errorsAfter, errorsBefore + 1);
  });

  it('closes a connection whose request exceeds the cap before its line ends', async () => {
    const c = await connect();
    c.socket.write('recipient=' + 'a'.repeat(17_000));
    await c.closed;
  });

  it('refuses a harvesting client from its 21st unknown recipient on, for every recipient, and no one else', async () => {
    const c = await connect();
    const harvester = { client_address: '203.0.113.66' };
    for (let i = 0; i < 20; i++) {
      assert.match(await c.ask({ ...harvester, recipient: `unknown-h${i}@example.com` }), /^550 5\.1\.1 /, `unknown #${i + 1}`);
    }
    assert.equal(await c.ask({ ...harvester, recipient: 'unknown-h20@example.com' }), '421 4.7.0 Too many unknown recipients');
    const calls = validator.addresses.length;
    assert.equal(await c.ask({ ...harvester, recipient: 'valid@example.com' }), '421 4.7.0 Too many unknown recipients');
    assert.equal(validator.addresses.length, calls, 'a blocked client costs no directory lookup');
    assert.equal(await c.ask({ client_address: '203.0.113.67', recipient: 'valid@example.com' }), 'DUNNO');
    assert.match(await c.ask({ client_address: '203.0.113.67', recipient: 'unknown-x@example.com' }), /^550 /);
    const blocked = (await metrics.harvestBlocked.get()).values.find((v) => v.labels.frontend === 'policy')?.value;
    assert.equal(blocked, 2);
  });

  it('answers a request in flight before the connection closes when the server shuts down', async () => {
    const s = createPolicyServer({ validator, metrics, logger: silentLogger(), harvest: null, maxConnections: 2, idleTimeoutMs: 60_000 });
    const p = (await s.listen('127.0.0.1:0')).port;
    const c = await PolicyClient.connect(p);
    try {
      c.socket.write(request({ recipient: 'valid-slow@example.com' }));
      while (!validator.addresses.includes('valid-slow@example.com')) await new Promise((r) => setTimeout(r, 2));
      const closing = s.close(5_000);
      assert.deepEqual(await c.replies(1), ['DUNNO']);
      await c.closed;
      await closing;
    } finally {
      c.socket.destroy();
    }
  });
});

describe('policy harvest guard keys', () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const servers: TcpServer[] = [];
  const sockets: net.Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => s.close(100)));
  });
  async function clientOf(harvest: HarvestGuard) {
    const server = createPolicyServer({ validator: new FakeValidator(byLocalPart('invalid'), { served: null }), metrics, logger: silentLogger(), harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    servers.push(server);
    const port = (await server.listen('127.0.0.1:0')).port;
    return async () => {
      const c = await PolicyClient.connect(port);
      sockets.push(c.socket);
      return c;
    };
  }

  it('counts a request with an empty client_address against the connection\'s peer address', async () => {
    const guard = new HarvestGuard({ maxUnknown: 1, windowMs: 600_000, action: 'reject' });
    const connect = await clientOf(guard);
    assert.equal(await (await connect()).ask({ client_address: '', recipient: 'unknown1@example.com' }), '550 5.1.1 User unknown');
    // Another connection, still no address: the same peer, so the limit holds.
    assert.equal(await (await connect()).ask({ client_address: '', recipient: 'unknown2@example.com' }), '421 4.7.0 Too many unknown recipients');
    assert.equal(guard.isBlocked('127.0.0.1'), true);
  });

  it('tarpit: a flagged client waits as long for a valid recipient as for an unknown one, and the valid one passes', async () => {
    const guard = new HarvestGuard({ maxUnknown: 0, windowMs: 600_000, action: 'tarpit', delayStepMs: 400, maxDelayMs: 400 });
    const connect = await clientOf(guard);
    const c = await connect();
    const client = '198.51.100.9';
    assert.equal(await c.ask({ client_address: client, recipient: 'unknown-first@example.com' }), '550 5.1.1 User unknown');
    const timed = async (recipient: string) => {
      const t = performance.now();
      const action = await c.ask({ client_address: client, recipient });
      return { action, ms: performance.now() - t };
    };
    const valid = await timed('valid@example.com');
    const unknown = await timed('unknown-again@example.com');
    assert.equal(valid.action, 'DUNNO', 'a flagged client\'s valid recipient still passes');
    assert.equal(unknown.action, '550 5.1.1 User unknown');
    for (const { ms } of [valid, unknown]) assert.ok(ms >= 390 && ms < 1_500, `delay ${ms.toFixed(0)} ms`);
    assert.ok(Math.abs(valid.ms - unknown.ms) < 300, `valid ${valid.ms.toFixed(0)} ms, unknown ${unknown.ms.toFixed(0)} ms`);
  });
});

describe('policy connection pipeline', () => {
  it('does not count the time it stops reading against a partly read request', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    // maxPipeline 2 and 30 ms lookups: 40 requests keep reading paused for about 600 ms, longer
    // than the 300 ms request timeout, while the 41st request sits half read.
    const server = createPolicyServer({ validator: new FakeValidator(byLocalPart('invalid'), { served: null }), metrics, logger: silentLogger(), harvest: null, maxConnections: 2, idleTimeoutMs: 60_000, requestTimeoutMs: 300, maxPipeline: 2 });
    const port = (await server.listen('127.0.0.1:0')).port;
    const c = await PolicyClient.connect(port);
    try {
      const last = request({ recipient: 'valid-last@example.com' });
      const half = Math.floor(last.length / 2);
      c.socket.write(Array.from({ length: 40 }, (_, i) => request({ recipient: `valid-slow${i}@example.com` })).join('') + last.slice(0, half));
      assert.equal((await c.replies(40)).length, 40);
      c.socket.write(last.slice(half));
      assert.deepEqual(await c.replies(1), ['DUNNO']);
    } finally {
      c.socket.destroy();
      await server.close(100);
    }
  });
});
