/**
 * A directory slow on every connection: each search answered in 2 s, inside the 3 s default
 * timeout, as a distant or overloaded server answers. A pooled connection that heard nothing for
 * half the timeout while others did was taken for a black-holed flow and dropped, its searches
 * retried elsewhere; but the answers the others heard were to searches sent before it, exactly
 * what a slow directory delivers. Each retry then needed another 2 s and missed the deadline: with
 * a configured `filter` (nothing batched, so the pool opens several connections) 18 of 40 cold
 * valid lookups at 5 a second were TEMP; with `maxInFlightPerConnection: 1`, 35 of 40 (the breaker
 * opened). A connection is now dropped as silent only once a search sent after its own was
 * answered on another (the black-holed case: attack-net-blackhole). Real slapd behind a delaying
 * proxy, the real service, a real socketmap client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAppWithLogs } from '../helpers/r12b-app-logs.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { until } from '../helpers/wait.js';

/** Each way: a search takes 2 s, between half the 3 s timeout and the timeout. */
const DELAY_MS = 1_000;
const LOOKUPS = 40;

const cases = [
  { name: 'a configured filter, default pool', ldap: { filter: '(|(mail=%s)(mailAlternateAddress=%s))' }, gapMs: 200 },
  { name: 'one search per connection', ldap: { maxInFlightPerConnection: 1 }, gapMs: 700 },
];

describe('a directory answering every search in 2 s, inside the 3 s timeout (real slapd, the real service)', { timeout: 240_000 }, () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 200 });
    proxy = await startDelayProxy(slapd.port, DELAY_MS);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  for (const c of cases) {
    test(`${c.name}: cold valid lookups arriving steadily are all answered valid, no connection dropped as silent`, async () => {
      const { app, lines } = await startAppWithLogs(
        {
          listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...c.ldap } },
        },
        { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
      );
      const port = app.addresses.socketmap!.port;
      const clients: SocketmapClient[] = [];
      try {
        const first = await SocketmapClient.connect(port);
        clients.push(first);
        await until('the directory answers through the slow proxy', async () => (await first.query('recipients', 'bob@example.com')) === 'OK bob@example.com', 30_000, 200);
        // As an MTA's smtpd processes ask: each its own connection, lookups overlapping in flight.
        const replies: Promise<string>[] = [];
        for (let k = 1; k <= LOOKUPS; k++) {
          const client = await SocketmapClient.connect(port);
          clients.push(client);
          replies.push(client.query('recipients', `user${k}@example.com`).then((r) => `user${k}: ${r}`));
          await new Promise((r) => setTimeout(r, c.gapMs));
        }
        const all = await Promise.all(replies);
        const wrong = all.filter((r) => !r.endsWith(`: OK ${r.split(':')[0]}@example.com`));
        assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${LOOKUPS} not answered valid`);
        const dropped = lines.filter((l) => l.includes('silent for half the timeout'));
        assert.deepEqual(dropped.slice(0, 2), [], `${dropped.length} healthy connections dropped as silent`);
      } finally {
        for (const client of clients) client.close();
        await app.close();
      }
    });
  }
});
