/**
 * Clients that never read their replies, against the real service and a real slapd: each of 100
 * connections pipelines cold lookups mixed with malformed requests (whose PERM replies are twelve
 * times longer than the requests) and reads nothing, until our replies fill its socket buffers and
 * reading from it pauses. With lookups owed, such a connection is busy, so the idle timeout never
 * closed it, and the request timeout is stopped while we do not read: it held its buffers (about
 * 400 kB of process memory, and up to the kernel's send buffer) and its connection slot for as
 * long as it liked. It is now closed once its replies have waited server.requestTimeout.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, netstring, sleep } from '../helpers/frontend-clients.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const CONNECTIONS = 100;
const REQUEST_TIMEOUT_S = 2;

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Writes until the server has stopped reading (a write not drained for 2 s), never reading a reply. */
async function floodUntilStalled(s: net.Socket, id: number): Promise<void> {
  s.pause();
  const deadline = Date.now() + 60_000;
  for (let i = 0; Date.now() < deadline && !s.destroyed; i++) {
    let chunk = '';
    for (let k = 0; k < 50; k++) chunk += netstring(`recipients ghost-${id}-${i}-${k}@example.com`) + netstring('x y').repeat(60);
    if (s.write(chunk)) continue;
    const drained = await Promise.race([once(s, 'drain').then(() => true), sleep(2_000).then(() => false)]);
    if (!drained) return;
  }
  throw new Error(`connection ${id}: the server kept reading for 60 s`);
}

describe('clients that never read their replies (real slapd, real service)', { timeout: 180_000 }, () => {
  let slapd: Slapd;
  let app: App;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 100 });
    app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: '127.0.0.1:0' },
        domains: ['example.com'],
        // The idle timeout stays at its default (5 minutes): only the stall may close these.
        server: { requestTimeout: `${REQUEST_TIMEOUT_S}s` },
        directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test(`${CONNECTIONS} connections that read nothing are closed once their replies have waited server.requestTimeout`, async () => {
    const port = app.addresses.socketmap!.port;
    const metricsPort = app.addresses.metrics!.port;
    const flood = await Promise.all(Array.from({ length: CONNECTIONS }, () => connectFrom(port, '127.0.0.2')));
    try {
      await Promise.all(flood.map((s, id) => floodUntilStalled(s, id)));
      const stalledAt = Date.now();
      const open = sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}');
      // Every connection stalled with its lookups owed (none idle, none timed out yet).
      assert.equal(open, CONNECTIONS, `connections open once stalled: ${open}`);

      // Another client is answered meanwhile, cached and cold alike.
      const honest = await SocketmapClient.connect(port);
      try {
        assert.equal(await honest.query('recipients', 'user1@example.com'), 'OK user1@example.com');
        assert.equal(await honest.query('recipients', 'nobody-here@example.com'), 'NOTFOUND ');
      } finally {
        honest.close();
      }

      // Closed within the request timeout after the stall, plus a sweep and a wide margin; before,
      // all 100 were still open after 30 s (and would have stayed for as long as the client liked).
      await until('every stalled connection is closed', async () => sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}') === 0, 30_000, 250);
      const closedAfterS = (Date.now() - stalledAt) / 1000;
      const text = await scrape(metricsPort);
      assert.equal(sample(text, 'rcptgate_connections_closed_total{frontend="socketmap",reason="write_timeout"}'), CONNECTIONS, text);
      assert.equal(sample(text, 'rcptgate_connections_closed_total{frontend="socketmap",reason="idle"}'), 0);
      assert.ok(closedAfterS < REQUEST_TIMEOUT_S + 20, `closed ${closedAfterS} s after the stall`);

      // The service still answers a fresh connection of the same address.
      const again = await SocketmapClient.connect(port);
      try {
        assert.equal(await again.query('recipients', 'user2@example.com'), 'OK user2@example.com');
      } finally {
        again.close();
      }
    } finally {
      for (const s of flood) s.destroy();
    }
  });
});
