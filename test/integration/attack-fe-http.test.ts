/**
 * The HTTP batch endpoint against a client that leaves, with the real app and a real slapd: a
 * POST /v1/recipients:check whose connection is reset before its answer starts no further
 * lookups. Each abandoned batch used to run all its 1000 lookups, so a client that sends batches
 * and resets at once (freeing its connection slot each time) kept any number of them running at
 * the directory, past every connection cap, ahead of the MTAs' lookups.
 *
 * One whose client half-closes (sends its body, then FIN) is abandoned the same way. Its
 * connection was then left open for ever: no answer was sent, and none of Node's timeouts applies
 * to a request read whole, so each such connection held its slot (and the per-client cap) until
 * the client chose to close, and a shutdown waited out its whole drain time for it. The server
 * now closes an abandoned batch's connection at once.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { closedWithin, sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

const OPEN_HTTP = /^rcptgate_connections\{frontend="http"\} (\S+)$/gm;
const HTTP_LOOKUPS = /^rcptgate_lookups_total\{[^}]*frontend="http"[^}]*\} (\S+)$/gm;

async function httpMetric(app: App, pattern: RegExp): Promise<number> {
  const text = await app.metrics.registry.metrics();
  return [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
}

const httpLookups = (app: App) => httpMetric(app, HTTP_LOOKUPS);

/** Writes a batch of `n` cold addresses and half-closes; the socket is left to the server. */
async function batchThenFin(port: number, tag: string, n: number): Promise<{ socket: net.Socket; received: () => number }> {
  const body = JSON.stringify({ addresses: Array.from({ length: n }, (_, i) => `${tag}-${i}@example.com`) });
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.end(`POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  return { socket, received: () => received };
}

function postBatch(port: number, body: string): http.ClientRequest {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/recipients:check', headers: { 'content-type': 'application/json' }, agent: false });
  req.on('error', () => undefined);
  req.end(body);
  return req;
}

describe('HTTP batches of a client that leaves (real slapd)', () => {
  let ldap: Slapd;
  let app: App;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        cache: { maxEntries: 0 },
        log: { level: 'warn' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('a batch whose connection is reset stops starting lookups; one that stays is answered whole', async () => {
    const port = app.addresses.http!.port;
    const batch = (tag: string) => JSON.stringify({ addresses: Array.from({ length: 1000 }, (_, i) => `${tag}-${i}@example.com`) });
    for (let k = 0; k < 5; k++) {
      const req = postBatch(port, batch(`gone${k}`));
      setTimeout(() => req.destroy(), 30);
    }
    await sleep(4_000);
    const abandoned = await httpLookups(app);
    // 5,000 before; now what was under way when each client left (8 at a time per batch).
    assert.ok(abandoned < 1_000, `${abandoned} lookups ran for 5 batches whose clients left after 30 ms`);

    const answered = await new Promise<number>((resolve, reject) => {
      postBatch(port, batch('stays')).on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve((JSON.parse(text) as { results: unknown[] }).results.length));
        res.on('error', reject);
      });
    });
    assert.equal(answered, 1000);
  });

  test('a batch whose client half-closes closes its connection at once; its lookups stop and the slot is free again', async () => {
    const port = app.addresses.http!.port;
    const before = await httpLookups(app);
    const clients = await Promise.all([0, 1, 2].map((k) => batchThenFin(port, `fin${k}`, 1000)));
    try {
      const closed = await Promise.race([
        Promise.all(clients.map((c) => closedWithin(c.socket))).then(() => true),
        sleep(3_000).then(() => false),
      ]);
      assert.equal(closed, true, 'the server closes the connection of each abandoned batch within 3 s');
      assert.deepEqual(clients.map((c) => c.received()), [0, 0, 0], 'an abandoned batch gets no partial answer');
      assert.equal(await httpMetric(app, OPEN_HTTP), 0, 'no HTTP connection is left open');
      assert.ok((await httpLookups(app)) - before < 1_000, 'the lookups of the abandoned batches stopped');
    } finally {
      for (const c of clients) c.socket.destroy();
    }
  });

  // Last: it closes the app.
  test('after abandoned batches the service shuts down without waiting out its drain time', async () => {
    const client = await batchThenFin(app.addresses.http!.port, 'drain', 1000);
    try {
      await sleep(500);
      const started = Date.now();
      await app.close();
      assert.ok(Date.now() - started < 3_000, `close took ${Date.now() - started} ms`);
    } finally {
      client.socket.destroy();
    }
  });
});
