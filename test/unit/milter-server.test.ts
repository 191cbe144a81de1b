import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { createMilterServer, negotiateProtocol } from '../../src/milter/server.js';
import { Cmd, Proto, Reply } from '../../src/milter/constants.js';
import { MilterPacketDecoder, encodeMilterPacket, parseOptneg, type MilterPacket } from '../../src/milter/codec.js';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { FakeValidator, byLocalPart } from '../helpers/fake-validator.js';


const ALL_OFFERED = 0x1fffff;
const z = (...parts: string[]) => Buffer.from(parts.map((p) => p + '\0').join(''));

function connectData(address: string): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(25000);
  return Buffer.concat([z('client.example.net'), Buffer.from(address.includes(':') ? '6' : '4'), port, z(address)]);
}

/** A minimal MTA side: sends packets, reads replies. */
class MtaClient {
  private decoder = new MilterPacketDecoder();
  private packets: MilterPacket[] = [];
  private waiters: Array<() => void> = [];
  closed: Promise<void>;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.packets.push(...this.decoder.push(d));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = once(socket, 'close').then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async connect(port: number): Promise<MtaClient> {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    await once(s, 'connect');
    return new MtaClient(s);
  }
  send(command: number, data?: Buffer): void {
    this.socket.write(encodeMilterPacket(command, data));
  }
  async next(): Promise<MilterPacket> {
    for (;;) {
      const p = this.packets.shift();
      if (p) return p;
      if (this.socket.destroyed) throw new Error('milter closed the connection');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  async negotiate(offered = ALL_OFFERED, version = 6) {
    const data = Buffer.alloc(12);
    data.writeUInt32BE(version, 0);
    data.writeUInt32BE(0x1ff, 4);
    data.writeUInt32BE(offered, 8);
    this.send(Cmd.OPTNEG, data);
    const reply = await this.next();
    assert.equal(reply.command, Reply.OPTNEG);
    return parseOptneg(reply.data);
  }
  /** Negotiation + CONNECT + HELO + MAIL, each answered with continue. */
  async session(client = '192.0.2.1') {
    await this.negotiate();
    await this.startSession(client);
  }
  async startSession(client: string) {
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('C'), z('j', 'mx.example.com')]));
    this.send(Cmd.CONNECT, connectData(client));
    assert.equal((await this.next()).command, Reply.CONTINUE);
    this.send(Cmd.HELO, z('client.example.net'));
    assert.equal((await this.next()).command, Reply.CONTINUE);
    this.send(Cmd.MAIL, z('<sender@example.net>', 'SIZE=100'));
    assert.equal((await this.next()).command, Reply.CONTINUE);
  }
  /** RCPT → "continue" or the reply-code text. */
  async rcpt(address: string): Promise<string> {
    this.send(Cmd.RCPT, z(`<${address}>`, 'NOTIFY=NEVER'));
    return describeReply(await this.next());
  }
}

function describeReply(p: MilterPacket): string {
  if (p.command === Reply.CONTINUE) return 'continue';
  if (p.command === Reply.REPLYCODE) return p.data.toString('utf8').replace(/\0$/, '');
  return `reply 0x${p.command.toString(16)}`;
}

describe('milter protocol negotiation', () => {
  it('asks to skip headers, end of headers, body, unknown commands and DATA when offered', () => {
    const got = negotiateProtocol(ALL_OFFERED);
    for (const flag of [Proto.NOHDRS, Proto.NOEOH, Proto.NOBODY, Proto.NOUNKNOWN, Proto.NODATA]) assert.ok(got & flag);
    for (const flag of [Proto.NOCONNECT, Proto.NORCPT, Proto.NR_RCPT, Proto.RCPT_REJ]) assert.equal(got & flag, 0);
  });
  it('never asks for a flag the MTA did not offer', () => {
    for (const offered of [0, Proto.NOBODY, Proto.NOHDRS | Proto.NOCONNECT, 0x7f]) {
      assert.equal(negotiateProtocol(offered) & ~offered, 0);
    }
  });
});

describe('milter server', () => {
  const validator = new FakeValidator(byLocalPart('not_ours'), { served: null });
  const metrics = new Metrics({ defaultMetrics: false });
  const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
  let server: TcpServer;
  let port: number;
  const clients: MtaClient[] = [];
  const connect = async () => {
    const c = await MtaClient.connect(port);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = createMilterServer({ validator, metrics, logger: silentLogger(), harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    port = (await server.listen('127.0.0.1:0')).port;
  });
  after(async () => {
    for (const c of clients) c.socket.destroy();
    await server.close(100);
  });

  it('negotiates version 6, no actions, and only offered skips', async () => {
    const c = await connect();
    const offered = Proto.NOBODY | Proto.NOHDRS | Proto.NOCONNECT;
    assert.deepEqual(await c.negotiate(offered), { version: 6, actions: 0, protocol: Proto.NOBODY | Proto.NOHDRS });
  });

  it('answers an older MTA in its own version', async () => {
    const c = await connect();
    assert.equal((await c.negotiate(ALL_OFFERED, 4)).version, 4);
  });

  it('continues for valid and not_ours recipients, 550 for unknown, 451 for tempfail', async () => {
    const c = await connect();
    await c.session();
    assert.equal(await c.rcpt('valid@example.com'), 'continue');
    assert.equal(await c.rcpt('other@elsewhere.example'), 'continue');
    assert.equal(await c.rcpt('unknown@example.com'), '550 5.1.1 User unknown');
    assert.equal(await c.rcpt('temp@example.com'), '451 4.3.0 Recipient address lookup failed');
  });

  it('looks up the bare address, without brackets or ESMTP parameters', async () => {
    const c = await connect();
    await c.session();
    await c.rcpt('valid-bare@example.com');
    assert.equal(validator.addresses.at(-1), 'valid-bare@example.com');
  });

  it('continues through stages the MTA could not skip and goes on after ABORT', async () => {
    const c = await connect();
    await c.session();
    assert.equal(await c.rcpt('valid@example.com'), 'continue');
    for (const [cmd, data] of [
      [Cmd.DATA, Buffer.alloc(0)],
      [Cmd.HEADER, z('Subject', 'hi')],
      [Cmd.EOH, Buffer.alloc(0)],
      [Cmd.BODY, Buffer.from('hello\r\n')],
      [Cmd.BODYEOB, Buffer.alloc(0)],
    ] as const) {
      c.send(cmd, data);
      assert.equal(describeReply(await c.next()), 'continue');
    }
    c.send(Cmd.ABORT);
    c.send(Cmd.MAIL, z('<other@example.net>'));
    assert.equal(describeReply(await c.next()), 'continue', 'ABORT has no reply; the next MAIL gets the next one');
    assert.equal(await c.rcpt('unknown@example.com'), '550 5.1.1 User unknown');
  });

  it('answers pipelined packets in order when a lookup is slow', async () => {
    const c = await connect();
    await c.session();
    c.send(Cmd.RCPT, z('<unknown-slow@example.com>'));
    c.send(Cmd.RCPT, z('<valid@example.com>'));
    assert.equal(describeReply(await c.next()), '550 5.1.1 User unknown');
    assert.equal(describeReply(await c.next()), 'continue');
  });

  it('refuses a harvesting client from its 21st unknown recipient on, across sessions, and no one else', async () => {
    const c = await connect();
    await c.session('198.51.100.66');
    for (let i = 0; i < 20; i++) assert.equal(await c.rcpt(`unknown-h${i}@example.com`), '550 5.1.1 User unknown');
    assert.equal(await c.rcpt('unknown-h20@example.com'), '421 4.7.0 Too many unknown recipients');
    assert.equal(await c.rcpt('valid@example.com'), '421 4.7.0 Too many unknown recipients');
    // Same connection, next SMTP session, another client: unaffected.
    c.send(Cmd.QUIT_NC);
    await c.startSession('198.51.100.67');
    assert.equal(await c.rcpt('valid@example.com'), 'continue');
    assert.equal(await c.rcpt('unknown@example.com'), '550 5.1.1 User unknown');
    // The harvester again, on a new connection: still refused.
    const again = await connect();
    await again.session('198.51.100.66');
    assert.equal(await again.rcpt('valid@example.com'), '421 4.7.0 Too many unknown recipients');
  });

  it('takes the client address from the {client_addr} macro when CONNECT has none', async () => {
    const local = new HarvestGuard({ maxUnknown: 0, windowMs: 600_000, action: 'reject' });
    const s = createMilterServer({ validator, metrics, logger: silentLogger(), harvest: local, maxConnections: 2, idleTimeoutMs: 60_000 });
    const p = (await s.listen('127.0.0.1:0')).port;
    const c = await MtaClient.connect(p);
    try {
      await c.negotiate();
      c.send(Cmd.MACRO, Buffer.concat([Buffer.from('C'), z('{client_addr}', '203.0.113.9')]));
      c.send(Cmd.CONNECT, Buffer.concat([z('unknown'), Buffer.from('U')]));
      assert.equal(describeReply(await c.next()), 'continue');
      assert.equal(await c.rcpt('unknown@example.com'), '421 4.7.0 Too many unknown recipients');
      assert.equal(local.isBlocked('203.0.113.9'), true);
    } finally {
      c.socket.destroy();
      await s.close(100);
    }
  });

  it('keys a Sendmail-style "IPv6:" client address like the plain one', async () => {
    const local = new HarvestGuard({ maxUnknown: 0, windowMs: 600_000, action: 'reject' });
    const s = createMilterServer({ validator, metrics, logger: silentLogger(), harvest: local, maxConnections: 2, idleTimeoutMs: 60_000 });
    const p = (await s.listen('127.0.0.1:0')).port;
    const c = await MtaClient.connect(p);
    try {
      await c.session('IPv6:2001:DB8::1');
      assert.equal(await c.rcpt('unknown@example.com'), '421 4.7.0 Too many unknown recipients');
      assert.equal(local.isBlocked('2001:db8::1'), true);
    } finally {
      c.socket.destroy();
      await s.close(100);
    }
  });

  it('closes the connection on QUIT', async () => {
    const c = await connect();
    await c.session();
    c.send(Cmd.QUIT);
    await c.closed;
  });

  it('closes a connection that sends garbage, and serves the others', async () => {
    const good = await connect();
    await good.session();
    const bad = await connect();
    bad.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x41]));
    await bad.closed;
    const early = await connect();
    early.send(Cmd.RCPT, z('<valid@example.com>'));
    await early.closed; // RCPT before negotiation is a protocol error
    assert.equal(await good.rcpt('valid@example.com'), 'continue');
  });
});

describe('milter harvest guard and address handling', () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const started: Array<{ s: TcpServer; c: MtaClient[] }> = [];
  after(async () => {
    for (const { s, c } of started) {
      for (const x of c) x.socket.destroy();
      await s.close(100);
    }
  });
  async function serverWith(harvest: HarvestGuard) {
    const validator = new FakeValidator(byLocalPart('not_ours'), { served: null });
    const s = createMilterServer({ validator, metrics, logger: silentLogger(), harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    const port = (await s.listen('127.0.0.1:0')).port;
    const entry = { s, c: [] as MtaClient[] };
    started.push(entry);
    return {
      validator,
      connect: async () => {
        const c = await MtaClient.connect(port);
        entry.c.push(c);
        return c;
      },
    };
  }

  it('counts a session whose CONNECT carries no client address against the peer address', async () => {
    const guard = new HarvestGuard({ maxUnknown: 1, windowMs: 600_000, action: 'reject' });
    const { connect } = await serverWith(guard);
    const first = await connect();
    await first.negotiate();
    first.send(Cmd.CONNECT, Buffer.concat([z('unknown'), Buffer.from('U')]));
    assert.equal(describeReply(await first.next()), 'continue');
    assert.equal(await first.rcpt('unknown1@example.com'), '550 5.1.1 User unknown');
    // QUIT_NC and a new CONNECT without an address: still the same peer, no fresh start.
    first.send(Cmd.QUIT_NC);
    first.send(Cmd.CONNECT, Buffer.concat([z('unknown'), Buffer.from('U')]));
    assert.equal(describeReply(await first.next()), 'continue');
    assert.equal(await first.rcpt('unknown2@example.com'), '421 4.7.0 Too many unknown recipients');
    assert.equal(guard.isBlocked('127.0.0.1'), true);
  });

  it('tarpit: a flagged client waits as long for a valid recipient as for an unknown one, and the valid one passes', async () => {
    const guard = new HarvestGuard({ maxUnknown: 0, windowMs: 600_000, action: 'tarpit', delayStepMs: 400, maxDelayMs: 400 });
    const { connect } = await serverWith(guard);
    const c = await connect();
    await c.session('198.51.100.5');
    assert.equal(await c.rcpt('unknown-first@example.com'), '550 5.1.1 User unknown'); // flags the client
    const timed = async (address: string) => {
      const t = performance.now();
      const reply = await c.rcpt(address);
      return { reply, ms: performance.now() - t };
    };
    const valid = await timed('valid@example.com');
    const unknown = await timed('unknown-again@example.com');
    assert.equal(valid.reply, 'continue', 'a flagged client\'s valid recipient still passes');
    assert.equal(unknown.reply, '550 5.1.1 User unknown');
    for (const { ms } of [valid, unknown]) assert.ok(ms >= 390 && ms < 1_500, `delay ${ms.toFixed(0)} ms`);
    assert.ok(Math.abs(valid.ms - unknown.ms) < 300, `valid ${valid.ms.toFixed(0)} ms, unknown ${unknown.ms.toFixed(0)} ms`);
    // Another client on the same server is not delayed.
    const other = await connect();
    await other.session('198.51.100.6');
    const t = performance.now();
    assert.equal(await other.rcpt('valid@example.com'), 'continue');
    assert.ok(performance.now() - t < 300);
  });

  it('refuses an invalid address in a served domain with 501 5.1.3', async () => {
    const { connect } = await serverWith(new HarvestGuard({ maxUnknown: 20, windowMs: 600_000 }));
    const c = await connect();
    await c.session();
    assert.equal(await c.rcpt('bad..dots@example.com'), '501 5.1.3 Bad recipient address syntax');
  });

  it('does not cut a quoted local part at its ">"', async () => {
    const { connect, validator } = await serverWith(new HarvestGuard({ maxUnknown: 20, windowMs: 600_000 }));
    const c = await connect();
    await c.session();
    assert.equal(await c.rcpt('"a>b"@example.com'), '501 5.1.3 Bad recipient address syntax');
    assert.equal(validator.addresses.at(-1), '"a>b"@example.com');
  });
});
