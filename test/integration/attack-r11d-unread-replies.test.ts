/**
 * Clients that never read their replies, against the real service and a real slapd: each
 * connection pipelines cold lookups mixed with malformed requests (whose PERM replies are twelve
 * times longer than the requests) and reads nothing, until our replies fill its socket buffers and
 * reading from it pauses.
 * - With lookups owed, such a connection is busy, so the idle timeout never closed it, and the
 *   request timeout is stopped while we do not read: it held its buffers and its connection slot
 *   for as long as it liked. It is now closed once its replies have waited server.requestTimeout.
 * - Each held about 400 kB of process memory: 900 took RSS from 115 to 476 MB (V8 heap capped at
 *   256 MB), near a 512 MiB container limit with one listener. At most MAX_STALLED (32) per
 *   listener may now wait so; one more is closed at once (peak 316 MB for the same 900).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, netstring, sleep } from '../helpers/frontend-clients.js';
import { MAX_STALLED } from '../../src/net/connection-state.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const FEW = 20;
const MANY = 48;
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

/** Writes until the server has stopped reading (a write not drained for 2 s) or closed, never reading a reply. */
async function floodUntilStalled(s: net.Socket, id: number, lookups = true): Promise<void> {
  s.pause();
  const deadline = Date.now() + 120_000;
  for (let i = 0; Date.now() < deadline && !s.destroyed; i++) {
    let chunk = '';
    // An empty request: 3 bytes, answered at once with a 47-byte PERM.
    for (let k = 0; k < 50; k++) chunk += (lookups ? netstring(`recipients ghost-${id}-${i}-${k}@example.com`) : '') + '0:,'.repeat(60);
    if (s.write(chunk)) continue;
    const drained = await Promise.race([once(s, 'drain').then(() => true, () => true), sleep(2_000).then(() => false)]);
    if (!drained) return;
  }
  if (s.destroyed) return;
  throw new Error(`connection ${id}: the server kept reading for 120 s`);
}

/** Connected is not accepted yet: a connection in the listen backlog looks stalled to its client too. */
async function allAccepted(metricsPort: number, count: number): Promise<void> {
  await until(`${count} connections accepted`, async () => sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}') === count, 15_000, 100);
}

async function honestAnswered(port: number): Promise<void> {
  const honest = await SocketmapClient.connect(port);
  try {
    assert.equal(await honest.query('recipients', 'user1@example.com'), 'OK user1@example.com');
    assert.equal(await honest.query('recipients', `nobody-${Math.random()}@example.com`), 'NOTFOUND ');
  } finally {
    honest.close();
  }
}

describe('clients that never read their replies (real slapd, real service)', { timeout: 180_000 }, () => {
  let slapd: Slapd;
  let app: App;
  /** The service on slapd; the idle timeout stays at its default (5 minutes): only a stall may close these. */
  const serve = (requestTimeoutS: number): Promise<App> =>
    startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: '127.0.0.1:0' },
        domains: ['example.com'],
        server: { requestTimeout: `${requestTimeoutS}s` },
        directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 100 });
    app = await serve(REQUEST_TIMEOUT_S);
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test(`${FEW} connections that read nothing are closed once their replies have waited server.requestTimeout`, async () => {
    const port = app.addresses.socketmap!.port;
    const metricsPort = app.addresses.metrics!.port;
    const before = await scrape(metricsPort);
    const closedBefore = sample(before, 'rcptgate_connections_closed_total{frontend="socketmap",reason="write_timeout"}');
    const flood = await Promise.all(Array.from({ length: FEW }, () => connectFrom(port, '127.0.0.2')));
    try {
      await allAccepted(metricsPort, FEW);
      await Promise.all(flood.map((s, id) => floodUntilStalled(s, id)));
      const stalledAt = Date.now();
      const open = sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}');
      // Every connection stalled with its lookups owed (none idle, none timed out yet).
      assert.equal(open, FEW, `connections open once stalled: ${open}`);
      await honestAnswered(port);

      // Closed within the request timeout after the stall, plus a sweep and a wide margin; before,
      // all were still open after 30 s (and would have stayed for as long as the client liked).
      await until('every stalled connection is closed', async () => sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}') === 0, 30_000, 250);
      const closedAfterS = (Date.now() - stalledAt) / 1000;
      const text = await scrape(metricsPort);
      assert.equal(sample(text, 'rcptgate_connections_closed_total{frontend="socketmap",reason="write_timeout"}') - closedBefore, FEW, text);
      assert.equal(sample(text, 'rcptgate_connections_closed_total{frontend="socketmap",reason="idle"}'), 0);
      assert.ok(closedAfterS < REQUEST_TIMEOUT_S + 20, `closed ${closedAfterS} s after the stall`);
      await honestAnswered(port);
    } finally {
      for (const s of flood) s.destroy();
    }
  });

  test(`of ${MANY} connections that read nothing, at most ${MAX_STALLED} are kept waiting for the peer`, async () => {
    // A request timeout longer than the test: the write timeout cannot be what closes them.
    const patient = await serve(600);
    const port = patient.addresses.socketmap!.port;
    const metricsPort = patient.addresses.metrics!.port;
    const flood = await Promise.all(Array.from({ length: MANY }, () => connectFrom(port, '127.0.0.3')));
    try {
      await allAccepted(metricsPort, MANY);
      // No lookups: reading pauses only once replies fill the write buffer, never for a turn.
      await Promise.all(flood.map((s, id) => floodUntilStalled(s, id, false)));
      // Before, all stayed open, each holding its buffers, until the write timeout.
      await until(`at most ${MAX_STALLED} connections open`, async () => sample(await scrape(metricsPort), 'rcptgate_connections{frontend="socketmap"}') <= MAX_STALLED, 15_000, 250);
      const text = await scrape(metricsPort);
      assert.ok(sample(text, 'rcptgate_connections_closed_total{frontend="socketmap",reason="write_stalled"}') >= MANY - MAX_STALLED, text.split('\n').filter((l) => l.startsWith('rcptgate_connections')).join('\n'));
      await honestAnswered(port);
    } finally {
      for (const s of flood) s.destroy();
      await patient.close();
    }
  });
});
