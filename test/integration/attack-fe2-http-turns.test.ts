/**
 * HTTP lookups of one client, with the real app and a real slapd. Node hands every request to the
 * app as soon as it is parsed, and each started a lookup at once: 2,000 GET requests written at
 * once put 2,000 cold lookups at the directory together, past `directory.ldap.maxInFlight` (the
 * directory's memory cap). They were answered 503, and an MTA's socketmap lookups in the same
 * moment got TEMP. HTTP lookups now take turns per client address like the socket front ends'
 * (`server.maxOutstanding`, `server.maxOutstandingPerClient`). Node reads pipelined requests
 * without bound while their answers wait (a paused socket keeps parsing), so a connection with
 * more than `server.maxPipeline` requests unanswered is closed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

async function httpLookups(app: App): Promise<number> {
  const text = await app.metrics.registry.metrics();
  return [...text.matchAll(/^rcptgate_lookups_total\{[^}]*frontend="http"[^}]*\} (\S+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

async function closedForPipeline(app: App): Promise<number> {
  const text = await app.metrics.registry.metrics();
  const m = /^rcptgate_connections_closed_total\{frontend="http",reason="pipeline"\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Writes `requests` on one connection at once, then reads until as many status lines came. */
function pipelined(port: number, requests: string[]): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const statuses = new Map<number, number>();
    let seen = 0;
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
      // Bodies are JSON: a status line can only be a response's first line.
      let at: number;
      while ((at = text.indexOf('HTTP/1.1 ')) >= 0 && text.length >= at + 12) {
        const code = Number(text.slice(at + 9, at + 12));
        statuses.set(code, (statuses.get(code) ?? 0) + 1);
        text = text.slice(at + 12);
        if (++seen === requests.length) {
          s.destroy();
          resolve(statuses);
        }
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`connection closed after ${seen} of ${requests.length} answers`)));
    s.write(requests.join(''));
  });
}

describe('HTTP requests pipelined on one connection (real slapd)', () => {
  let ldap: Slapd;
  let app: App;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      // maxInFlight 200: the directory accepts 200 lookups at once and refuses more (tempfail).
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, maxInFlight: 200, timeout: '10s' } },
      cache: { maxEntries: 0 },
      // Room for the 2,000 pipelined requests of the first test (the default is 64).
      server: { maxPipeline: 2500 },
      log: { level: 'warn' },
    }, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('2,000 cold GETs pipelined on one connection are all answered 200 while an MTA lookup meanwhile gets no TEMP', async () => {
    const requests = Array.from({ length: 2000 }, (_, i) => `GET /v1/recipients/nobody${i}@example.com HTTP/1.1\r\nHost: rcptgate\r\n\r\n`);
    const mta = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      const flood = pipelined(app.addresses.http!.port, requests);
      let done = false;
      void flood.finally(() => (done = true)).catch(() => undefined);
      const mtaReplies: string[] = [];
      // Cold valid lookups (no cache) for as long as the flood is answered.
      while (!done) mtaReplies.push(await mta.query('recipients', `user${(mtaReplies.length % 5) + 1}@example.com`));
      const statuses = await flood;
      assert.deepEqual([...statuses], [[200, 2000]], 'every lookup is answered 200 (unknown), none refused');
      assert.ok(mtaReplies.length > 0);
      assert.deepEqual(
        mtaReplies.filter((r) => !r.startsWith('OK ')),
        [],
        `the MTA's cold lookups during the flood are all OK (${mtaReplies.length} asked)`,
      );
    } finally {
      mta.close();
    }
  });

  test('a connection that pipelines 20,000 GETs without reading (over server.maxPipeline) is closed, its lookups stop, and others are answered', async () => {
    const before = await httpLookups(app);
    const s = net.connect(app.addresses.http!.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.pause();
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    let timedOut = false;
    s.write(Array.from({ length: 20_000 }, (_, i) => `GET /v1/recipients/ahead${i}@example.com HTTP/1.1\r\nHost: rcptgate\r\n\r\n`).join(''));
    const timer = setTimeout(() => {
      timedOut = true;
      s.destroy();
    }, 10_000);
    await closed;
    clearTimeout(timer);
    assert.equal(timedOut, false, 'the server closed the connection (a reset: requests were left unread)');
    await sleep(1_000); // lookups already started finish
    const ran = (await httpLookups(app)) - before;
    assert.ok(ran <= 500, `at most a few turns' worth of its lookups ran, not 20,000: ${ran}`);
    assert.equal(await closedForPipeline(app), 1);
    const statuses = await pipelined(app.addresses.http!.port, ['GET /v1/recipients/alice@example.com HTTP/1.1\r\nHost: rcptgate\r\n\r\n']);
    assert.deepEqual([...statuses], [[200, 1]]);
  });

  // Node ended the socket at the client's FIN, so an answer not ready by then was lost.
  test('a client that sends a cold lookup and then FIN still gets its answer', async () => {
    for (const version of ['1.1', '1.0']) {
      const s = net.connect(app.addresses.http!.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
      s.end(`GET /v1/recipients/user${version === '1.1' ? 1 : 2}@example.com HTTP/${version}\r\nHost: rcptgate\r\n\r\n`);
      await closed;
      const text = Buffer.concat(chunks).toString();
      assert.match(text, /^HTTP\/1\.1 200 [\s\S]*"verdict":"valid","valid":true,"source":"directory"/, `HTTP/${version}: ${text}`);
    }
  });
});
