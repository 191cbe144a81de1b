/**
 * Binds refused for want of TLS (slapd's `security simple_bind=N`) are no longer paused like a
 * refused password, so the directory's administrator can fix it without mail staying deferred. The
 * other side: under a spam flood, every lookup must not turn into a new connection and bind to the
 * directory (a bind storm, a log line each). The breaker bounds both; this measures them. Real slapd,
 * a counting TCP relay in front of it (to count connections), the real service.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startAppWithLogs } from '../helpers/r12b-app-logs.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

interface CountingRelay {
  readonly url: string;
  connections: number;
  close(): Promise<void>;
}

async function startCountingRelay(upstreamPort: number): Promise<CountingRelay> {
  const sockets = new Set<net.Socket>();
  const relay = {
    url: '',
    connections: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const server = net.createServer((client) => {
    relay.connections++;
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  relay.url = `ldap://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return relay;
}

describe('a flood of lookups while the directory refuses simple binds without TLS (real slapd)', () => {
  let slapd: Slapd;
  let relay: CountingRelay;
  let app: App;
  let lines: string[];
  const clients: SocketmapClient[] = [];
  before(async () => {
    slapd = await startSlapd({ databaseLines: ['security simple_bind=64'] });
    relay = await startCountingRelay(slapd.port);
    ({ app, lines } = await startAppWithLogs(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        cache: { positiveTtl: '1ms', negativeTtl: '1ms' },
        directory: { kind: 'ldap', ldap: { urls: [relay.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    ));
    for (let i = 0; i < 20; i++) clients.push(await SocketmapClient.connect(app.addresses.socketmap!.port));
  });
  after(async () => {
    for (const c of clients) c.close();
    await app?.close();
    await relay?.close();
    await slapd?.close();
  });

  test('every lookup tempfails, and connections to the directory stay few', async () => {
    const replies = new Map<string, number>();
    const linesBefore = lines.length;
    const started = performance.now();
    let n = 0;
    const FLOOD_MS = 8_000;
    await Promise.all(
      clients.map(async (c) => {
        while (performance.now() - started < FLOOD_MS) {
          const kind = (await c.query('recipients', `spam${n++}@example.com`)).split(' ')[0]!;
          replies.set(kind, (replies.get(kind) ?? 0) + 1);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const total = [...replies.values()].reduce((a, b) => a + b, 0);
    const perSecond = relay.connections / seconds;
    const logged = lines.length - linesBefore;
    console.log(`${total} lookups in ${seconds.toFixed(1)} s: ${JSON.stringify(Object.fromEntries(replies))}; ${relay.connections} connections to the directory (${perSecond.toFixed(1)}/s); ${logged} log lines`);
    assert.deepEqual([...replies.keys()], ['TEMP'], 'directory trouble is tempfail, never unknown');
    assert.ok(total > 200, `the flood made only ${total} lookups`);
    // A handful of binds per second at most (the breaker's trials), never one per lookup.
    assert.ok(relay.connections < 40, `${relay.connections} connections for ${total} lookups in ${seconds.toFixed(1)} s`);
    assert.ok(logged < 100, `${logged} log lines in ${seconds.toFixed(1)} s, not one per lookup`);
  });
});
