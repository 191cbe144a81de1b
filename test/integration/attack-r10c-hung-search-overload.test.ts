/**
 * A server that answers binds but never a search. A search silent for half the timeout, while the
 * other pooled connections had heard from the server (their binds), is dropped and retried once on
 * another connection; the retry hung too, and at the deadline the lookup was judged by the retry
 * alone: half the timeout on the wire, so "it waited in our own queue", counted as overloaded. Our
 * overload never counts against the directory, so the circuit breaker did not open for a server
 * that hangs every search, rcptgate_directory_requests_total said overloaded (scale rcptgate up)
 * instead of timeout, and the lookups after them waited out the timeout again. The time on the wire
 * now counts from the first search. Real slapd behind a proxy that drops search answers, the real
 * service.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { protocolOpOffset, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

/** SearchResultEntry, SearchResultDone, SearchResultReference. */
const SEARCH_ANSWERS = new Set([0x64, 0x65, 0x73]);

describe('a server that answers binds but never a search (real slapd, the real service)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
    proxy.transform = (m) => (SEARCH_ANSWERS.has(m[protocolOpOffset(m)]!) ? null : m);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test('lookups that hung on two connections in turn are directory timeouts, not our overload', async () => {
    const app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    const clients = await Promise.all([1, 2, 3, 4].map(() => SocketmapClient.connect(app.addresses.socketmap!.port)));
    try {
      const replies = await Promise.all(clients.map((c, i) => c.query('recipients', ['alice', 'bob', 'nobody', 'ghost'][i] + '@example.com')));
      for (const r of replies) assert.match(r, /^TEMP /);
      const text = await app.metrics.registry.metrics();
      const outcome = (o: string): number => Number(text.split('\n').find((l) => l.startsWith(`rcptgate_directory_requests_total{outcome="${o}"}`))?.split(' ')[1] ?? 0);
      // The searches were dropped by the silence check and retried: the case under test.
      assert.ok(proxy.connections.length >= 2, `connections: ${proxy.connections.length}`);
      assert.equal(outcome('overloaded'), 0, text.split('\n').filter((l) => l.startsWith('rcptgate_directory_requests_total')).join('\n'));
      assert.equal(outcome('timeout'), 4);
    } finally {
      for (const c of clients) c.close();
      await app.close();
    }
  });
});
