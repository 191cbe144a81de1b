/**
 * Per-client connection caps on a dual-stack listener ([::]), on real sockets: an IPv4 client
 * arrives as an IPv4-mapped IPv6 address (::ffff:127.0.0.1), whether it connects to 127.0.0.1 or
 * to ::ffff:127.0.0.1, and must count as the one client 127.0.0.1; ::1 is another client. A peer
 * exactly at its cap keeps every connection; the next one is refused. Checked for a socket
 * front end (the shared TCP base) and for the HTTP listener, which counts on its own.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

interface Held {
  socket: net.Socket;
  closed: () => boolean;
}

async function open(port: number, host: string): Promise<Held> {
  const socket = net.connect({ port, host });
  socket.on('error', () => undefined);
  let closed = false;
  socket.once('close', () => (closed = true));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()).once('close', () => resolve()));
  return { socket, closed: () => closed };
}

describe('per-client connection caps on a dual-stack listener', () => {
  let app: App;

  before(async () => {
    app = await startApp({
      listen: { http: '[::]:0', socketmap: '[::]:0', policy: null, milter: null, metrics: null },
      server: { maxConnectionsPerClient: 3 },
      log: { level: 'warn' },
    });
  });
  after(async () => {
    await app?.close();
  });

  for (const listener of ['socketmap', 'http'] as const) {
    test(`${listener}: 127.0.0.1 and ::ffff:127.0.0.1 are one client at exactly its cap; ::1 is another`, async () => {
      const port = app.addresses[listener]!.port;
      const held = [await open(port, '127.0.0.1'), await open(port, '::ffff:127.0.0.1'), await open(port, '127.0.0.1')];
      const over = await open(port, '::ffff:127.0.0.1');
      const v6 = await open(port, '::1');
      try {
        await sleep(300);
        assert.deepEqual(held.map((h) => h.closed()), [false, false, false], 'the three connections at the cap stay open');
        assert.equal(over.closed(), true, 'a fourth from the same IPv4 client, IPv4-mapped, is refused');
        assert.equal(v6.closed(), false, '::1 is a client of its own');
      } finally {
        for (const h of [...held, over, v6]) h.socket.destroy();
        await sleep(100);
      }
    });
  }
});
