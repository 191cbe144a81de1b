/**
 * A POST /v1/recipients:check whose client half-closes (sends its body, then FIN) is abandoned:
 * its lookups not yet started are not run (README "HTTP API"). The connection was then left
 * open for ever: no answer was sent, and none of Node's timeouts applies to a request read
 * whole, so each such connection held its slot (and the per-client cap) until the client
 * chose to close, and a shutdown waited out its whole drain time for it. With a real slapd and
 * the real app: the server now closes an abandoned batch's connection at once.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { closedWithin, sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

async function httpMetric(app: App, pattern: RegExp): Promise<number> {
  const text = await app.metrics.registry.metrics();
  return [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
}

const OPEN_HTTP = /^rcptgate_connections\{frontend="http"\} (\S+)$/gm;
const HTTP_LOOKUPS = /^rcptgate_lookups_total\{[^}]*frontend="http"[^}]*\} (\S+)$/gm;

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

describe('HTTP batches whose client half-closes (real slapd)', () => {
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

  test('an abandoned batch closes its connection at once; its lookups stop and the slot is free again', async () => {
    const port = app.addresses.http!.port;
    const clients = await Promise.all([0, 1, 2].map((k) => batchThenFin(port, `fin${k}`, 1000)));
    try {
      const closed = await Promise.race([
        Promise.all(clients.map((c) => closedWithin(c.socket))).then(() => true),
        sleep(3_000).then(() => false),
      ]);
      assert.equal(closed, true, 'the server closes the connection of each abandoned batch within 3 s');
      assert.deepEqual(clients.map((c) => c.received()), [0, 0, 0], 'an abandoned batch gets no partial answer');
      assert.equal(await httpMetric(app, OPEN_HTTP), 0, 'no HTTP connection is left open');
      assert.ok((await httpMetric(app, HTTP_LOOKUPS)) < 1_000, 'the lookups of the abandoned batches stopped');
    } finally {
      for (const c of clients) c.socket.destroy();
    }
  });

  test('after abandoned batches the service shuts down without waiting out its drain time', async () => {
    const port = app.addresses.http!.port;
    const client = await batchThenFin(port, 'drain', 1000);
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
