/**
 * The HTTP API's per-client limits against a client rotating through its IPv6 /64, under the
 * real `rcptgate serve` (bundled example directory) on a dual-stack listener. Four addresses of
 * one /64 are put on the loopback interface (test/helpers/r12i-ipv6-net.ts) and admitted without
 * a token by http.lookupAllowFrom.
 *
 * The connection cap and the batch budget's per-client share counted each address as a client,
 * while harvest protection counts the /64: one host (a VM is handed a /64) had 2^64 shares.
 * With maxConnectionsPerClient 2, four addresses held 8 connections; unfinished batches from
 * four addresses held the whole 4 MB budget and an MTA's batch from 127.0.0.1 got 503. Now
 * the /64 is one client: 2 connections, half the budget, and the other client's batch answers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { addIpv6Network, type Ipv6Network } from '../helpers/r12i-ipv6-net.js';
import { sleep } from '../helpers/frontend-clients.js';

/** A connection from `from` that collects what the server sends until it closes. */
class Raw {
  text = '';
  closed = false;
  readonly socket: net.Socket;
  constructor(to: string, port: number, from?: string) {
    this.socket = net.connect({ host: to, port, localAddress: from });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (c: string) => (this.text += c));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }
  connected(): Promise<void> {
    return new Promise((resolve) => (this.socket.connecting ? this.socket.once('connect', () => resolve()) : resolve()));
  }
}

async function startWith(dir: string, server: object, allowFrom: string[], serves: ServeProcess[]): Promise<number> {
  const config = path.join(dir, `rcptgate-${Date.now()}.yaml`);
  await writeFile(config, JSON.stringify({
    listen: { http: '[::]:0', socketmap: null, policy: null, milter: null, metrics: null },
    http: { lookupAllowFrom: ['127.0.0.0/8', '::1/128', ...allowFrom] },
    server,
    log: { level: 'info' },
  }));
  const serve = startServe(['--config', config]);
  serves.push(serve);
  return listenerPort(serve, 'http');
}

/** Waits until every connection has an answer or is closed (at most `ms`). */
async function settle(conns: Raw[], ms: number, done: (c: Raw) => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !conns.every(done)) await sleep(100);
}

describe('HTTP per-client limits count an IPv6 client as its /64 (real serve)', () => {
  let netw: Ipv6Network;
  let dir: string;
  const serves: ServeProcess[] = [];
  const conns: Raw[] = [];

  before(async () => {
    netw = await addIpv6Network(5);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ipv6-client-'));
  });
  after(async () => {
    for (const c of conns) c.socket.destroy();
    for (const s of serves) await s.kill();
    await netw?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('four addresses of one /64 hold maxConnectionsPerClient connections together, not each', async () => {
    const port = await startWith(dir, { maxConnectionsPerClient: 2 }, [netw.prefix], serves);
    const [target, ...sources] = netw.addresses as [string, ...string[]];
    const mine: Raw[] = [];
    for (const from of sources) {
      for (let i = 0; i < 2; i++) {
        const c = new Raw(target, port, from);
        await c.connected();
        mine.push(c);
      }
    }
    conns.push(...mine);
    await sleep(300);
    for (const c of mine) if (!c.closed) c.socket.write(`GET /v1/recipients/alice@example.com HTTP/1.1\r\nHost: [${target}]:${port}\r\n\r\n`);
    await settle(mine, 15_000, (c) => c.closed || c.text.includes('\r\n\r\n{'));
    const answered = mine.filter((c) => !c.closed && /^HTTP\/1\.1 200/.test(c.text)).length;
    assert.equal(answered, 2, `connections of the /64 answered: ${answered} of ${mine.length}`);
    // Another client (IPv4 loopback) keeps its own share.
    const other = new Raw('127.0.0.1', port);
    conns.push(other);
    await other.connected();
    other.socket.write(`GET /v1/recipients/alice@example.com HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await settle([other], 15_000, (c) => c.closed || c.text.includes('\r\n\r\n{'));
    assert.match(other.text, /^HTTP\/1\.1 200/);
  });

  test('unfinished batches from four addresses of one /64 hold half the batch budget; another client\'s batch is answered', async () => {
    const port = await startWith(dir, {}, [netw.prefix], serves);
    const [target, ...sources] = netw.addresses as [string, ...string[]];
    // Chunked bodies count as 256 kB each: 16 of them are the whole 4 MB budget.
    const held: Raw[] = [];
    for (let i = 0; i < 16; i++) {
      const c = new Raw(target, port, sources[i % sources.length]);
      await c.connected();
      c.socket.write(`POST /v1/recipients:check HTTP/1.1\r\nHost: [${target}]:${port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n`);
      held.push(c);
      await sleep(50);
    }
    conns.push(...held);
    await sleep(1_000);
    const busy = held.filter((c) => /^HTTP\/1\.1 503/.test(c.text)).length;
    assert.equal(busy, 8, `batches of the /64 refused busy: ${busy} of 16 (half the budget is 8 of them)`);
    const body = JSON.stringify({ addresses: ['alice@example.com', 'nobody@example.com'] });
    const mta = new Raw('127.0.0.1', port);
    conns.push(mta);
    await mta.connected();
    mta.socket.write(`POST /v1/recipients:check HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    await settle([mta], 15_000, (c) => c.closed);
    assert.match(mta.text, /^HTTP\/1\.1 200/, `the other client's batch: ${mta.text.slice(0, 200)}`);
  });
});
