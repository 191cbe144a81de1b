/**
 * One milter connection carrying SMTP session after session (SMFIC_QUIT_NC, as libmilter allows
 * and Sendmail may do): what one session told us must not carry into the next. Raw milter client
 * on a real socket, one command at a time as an MTA sends them; engine: LDIF for
 * example.com/example.org (split engine), harvest protection with reject after 2 unknowns.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { MilterPacketDecoder, encodeMilterPacket, type MilterPacket } from '../../src/milter/codec.js';
import { Cmd, Family } from '../../src/milter/constants.js';
import { createMilterServer } from '../../src/milter/server.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { connectFrom, milterOptneg, milterRcpt } from '../helpers/frontend-clients.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

function connect(hostname: string, address: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return encodeMilterPacket(Cmd.CONNECT, Buffer.concat([Buffer.from(`${hostname}\0`), Buffer.from([Family.INET]), p, Buffer.from(`${address}\0`)]));
}

const mail = (macros: Record<string, string>): Buffer[] => [
  ...(Object.keys(macros).length === 0
    ? []
    : [encodeMilterPacket(Cmd.MACRO, Buffer.from(`M${Object.entries(macros).map(([k, v]) => `${k}\0${v}\0`).join('')}`))]),
  encodeMilterPacket(Cmd.MAIL, Buffer.from('<sender@client.example>\0')),
];

/** Sends packets one at a time; those that are answered wait for their reply ("c" or the code). */
class Client {
  private readonly decoder = new MilterPacketDecoder();
  private readonly got: MilterPacket[] = [];
  private wake: (() => void) | null = null;
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.got.push(...this.decoder.push(d));
      this.wake?.();
    });
  }
  async ask(packet: Buffer): Promise<string> {
    this.socket.write(packet);
    while (this.got.length === 0) {
      if (this.socket.destroyed) throw new Error('milter connection closed');
      await new Promise<void>((r) => {
        this.wake = r;
        this.socket.once('close', r);
      });
    }
    const p = this.got.shift()!;
    const cmd = String.fromCharCode(p.command);
    return cmd === 'y' ? p.data.toString('utf8').replace(/\0$/, '') : cmd;
  }
  tell(packet: Buffer): void {
    this.socket.write(packet);
  }
}

describe('milter: sessions one after another on one connection (QUIT_NC)', () => {
  let engine: SplitEngine | undefined;
  let server: TcpServer | undefined;
  let port = 0;

  before(async () => {
    engine = await startSplitEngine();
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: 2, windowMs: 600_000, action: 'reject' });
    server = createMilterServer({ validator, metrics, logger, harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    port = (await server.listen('127.0.0.1:0')).port;
  });

  after(async () => {
    await server?.close(1000);
    await engine?.close();
  });

  test("a login and a local submission end with their session; the harvester's flag does not", async () => {
    const socket = await connectFrom(port);
    const c = new Client(socket);
    try {
      assert.equal(await c.ask(milterOptneg()), 'O');
      const session = async (connectPacket: Buffer, macros: Record<string, string>, rcpts: string[]): Promise<string[]> => {
        assert.equal(await c.ask(connectPacket), 'c');
        const packets = mail(macros);
        for (const p of packets.slice(0, -1)) c.tell(p);
        assert.equal(await c.ask(packets.at(-1)!), 'c');
        const out: string[] = [];
        for (const r of rcpts) out.push(await c.ask(milterRcpt(r)));
        c.tell(encodeMilterPacket(Cmd.QUIT_NC));
        return out;
      };
      const harvester = connect('h.client.example', '192.0.2.60', 40000);
      assert.deepEqual(await session(harvester, {}, ['ghost1@example.com', 'ghost2@example.com', 'ghost3@example.com']), [
        '550 5.1.1 User unknown',
        '550 5.1.1 User unknown',
        '421 4.7.0 Too many unknown recipients',
      ]);
      // A user logged in from that address, then an anonymous session from it again.
      assert.deepEqual(await session(harvester, { '{auth_authen}': 'carol' }, ['alice@example.com']), ['c']);
      assert.deepEqual(await session(harvester, {}, ['alice@example.com']), ['421 4.7.0 Too many unknown recipients']);
      // Postfix's pretend client for sendmail(1), then a real client on port 25's side.
      assert.deepEqual(await session(connect('localhost', '127.0.0.1', 0), {}, ['nobody@example.com']), ['c']);
      assert.deepEqual(await session(connect('mx.client.example', '192.0.2.61', 40001), {}, ['nobody@example.com', 'alice@example.com']), [
        '550 5.1.1 User unknown',
        'c',
      ]);
      // A new negotiation also starts afresh.
      assert.deepEqual(await session(harvester, { '{auth_authen}': 'carol' }, ['alice@example.com']), ['c']);
      assert.equal(await c.ask(milterOptneg()), 'O');
      assert.deepEqual(await session(harvester, {}, ['alice@example.com']), ['421 4.7.0 Too many unknown recipients']);
    } finally {
      socket.destroy();
    }
  });
});
