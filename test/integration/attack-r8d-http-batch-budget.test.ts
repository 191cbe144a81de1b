/**
 * The HTTP batch budget (4 MB of batch bodies in progress across all clients) against the real
 * `rcptgate serve` on its example directory: one client opening 16 batches with a chunked body it
 * never finishes (each counted at the 256 kB body limit) held the whole budget, and every other
 * client's batch got 503 busy. Node drops such a request only after its 30 s request timeout, and
 * the client opens the next one at once: the budget stayed held for as long as the client liked.
 * One client address now holds at most half of the budget; the others keep the rest.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';

const HOLDER = '127.0.0.2';
const OTHER = '127.0.0.3';

/** A batch whose chunked body starts and never ends, from `localAddress`. */
function openSlowBatch(port: number, localAddress: string, sockets: net.Socket[]): void {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  s.write('POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n');
  sockets.push(s);
}

/** Posts a small batch from `localAddress`; resolves with the status code. */
function postSmall(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ addresses: ['alice@example.com'] });
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let head = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      head += c;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed without an answer: ${JSON.stringify(head)}`)));
    s.write(`POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
}

describe('HTTP batch budget: one client cannot hold it all (real serve)', () => {
  let serve: ServeProcess;
  let dir: string;
  const sockets: net.Socket[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-batch-budget-'));
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, log: { level: 'info' } }));
    serve = startServe(['--config', config]);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('16 never-finished chunked batches of one client leave room for another client', async () => {
    const port = await listenerPort(serve, 'http');
    assert.equal(await postSmall(port, OTHER), 200, 'the other client is answered before the flood');
    // 16 x 256 kB (the body limit, charged for a chunked body) is the whole 4 MB budget.
    for (let i = 0; i < 16; i++) openSlowBatch(port, HOLDER, sockets);
    // Once the holder's own next batch is refused, its unfinished batches are admitted.
    const deadline = Date.now() + 10_000;
    while ((await postSmall(port, HOLDER)) !== 503) {
      assert.ok(Date.now() < deadline, 'the holder is never refused');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await postSmall(port, OTHER), 200, 'another client is refused while one client holds unfinished batches');
  });
});
