/**
 * A backup MX under a dictionary attack: its own smtpd processes (one rcptgate client address,
 * the MTA host) each ask rcptgate about unknown recipients one after another, and each of those
 * needs the directory, 100 ms away. Meanwhile another SMTP session of the same MTA asks for a
 * recipient whose answer is cached. That answer needs no directory work, so it must come at
 * once, not after a turn behind the flood's directory backlog: it came 0.4-0.7 s late, as long
 * as the flood's own lookups took. Real slapd behind a delay proxy; socketmap and policy, and
 * the HTTP API, whose GET lookups of one client address take turns the same way (http/turns.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { connectFrom, netstring, policyRequest, sleep } from '../helpers/frontend-clients.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** Each direction to the directory: a round trip of 200 ms at least for every cold lookup. */
const DIRECTORY_DELAY_MS = 100;
/** smtpd processes of the MTA asking about unknown recipients (below the per-client cap of 300). */
const FLOOD_CONNECTIONS = 250;
const VICTIM_LOOKUPS = 15;
/** The cached answer's bound: nothing of the directory's 200 ms round trip may be in it. */
const VICTIM_MEDIAN_MS = 60;
const VICTIM_MAX_MS = 150;

type Frontend = 'socketmap' | 'policy';

/** One request at a time on `s`, as smtpd asks: write, wait for the reply. */
function asker(s: net.Socket, frontend: Frontend): (question: string) => Promise<string> {
  const waiting: Array<(reply: string) => void> = [];
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (chunk: string) => {
    buf += chunk;
    for (;;) {
      if (frontend === 'policy') {
        const end = buf.indexOf('\n\n');
        if (end < 0) return;
        waiting.shift()?.(buf.slice(0, end).replace(/^action=/, ''));
        buf = buf.slice(end + 2);
      } else {
        const colon = buf.indexOf(':');
        const len = Number(buf.slice(0, colon));
        if (colon < 0 || buf.length < colon + len + 2) return;
        waiting.shift()?.(buf.slice(colon + 1, colon + 1 + len));
        buf = buf.slice(colon + len + 2);
      }
    }
  });
  return (question) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      s.write(question);
    });
}

const question = (frontend: Frontend, recipient: string, client: string): string =>
  frontend === 'socketmap' ? netstring(`recipients ${recipient}`) : policyRequest(recipient, client);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Warms the cache with the victim's recipient, floods with unknown ones (`flood(connection, i)`,
 * one at a time per connection) until every connection has had answers, then times the victim's
 * cached lookups and checks them against the bounds.
 */
async function cachedUnderFlood(o: { victim: () => Promise<string>; valid: string; flood: (c: number, i: number) => Promise<string>; unknown: string }): Promise<void> {
  assert.equal(await o.victim(), o.valid, 'warming the cache');
  let stop = false;
  const floodTimes: number[] = [];
  const floodReplies = new Set<string>();
  const sessions = Array.from({ length: FLOOD_CONNECTIONS }, async (_, c) => {
    for (let i = 0; !stop; i++) {
      const started = performance.now();
      floodReplies.add(await o.flood(c, i));
      floodTimes.push(performance.now() - started);
    }
  });
  try {
    // The flood is in full swing: every connection has had answers, more are waiting.
    while (floodTimes.length < FLOOD_CONNECTIONS * 2) await sleep(20);
    const victimTimes: number[] = [];
    for (let k = 0; k < VICTIM_LOOKUPS; k++) {
      const started = performance.now();
      assert.equal(await o.victim(), o.valid);
      victimTimes.push(performance.now() - started);
      await sleep(50);
    }
    stop = true;
    const flooded = median(floodTimes);
    // The directory really was the bottleneck: the flood's own answers took its round trip.
    assert.ok(flooded >= 2 * DIRECTORY_DELAY_MS, `flood answers took ${flooded.toFixed(0)} ms (median)`);
    const detail = `cached answers took ${victimTimes.map((t) => t.toFixed(0)).join(', ')} ms while the flood's took ${flooded.toFixed(0)} ms (median)`;
    assert.ok(median(victimTimes) <= VICTIM_MEDIAN_MS, detail);
    assert.ok(Math.max(...victimTimes) <= VICTIM_MAX_MS, detail);
    assert.deepEqual([...floodReplies], [o.unknown], 'every flood recipient is unknown, none deferred');
  } finally {
    stop = true;
    await Promise.race([Promise.allSettled(sessions), sleep(3_000)]);
  }
}

describe('a cached answer under a dictionary attack from the same MTA (real slapd 100 ms away)', { timeout: 180_000 }, () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  let app: App;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 20 });
    proxy = await startDelayProxy(slapd.port, DIRECTORY_DELAY_MS);
    const config = {
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: null, metrics: null },
      domains: ['example.com'],
      // The flood comes from the MTA host; its harvest count is not the point here.
      policy: { harvest: { maxUnknown: 0 } },
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '20s' } },
    };
    app = await startApp(config, { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword });
  });
  after(async () => {
    await app?.close();
    await proxy?.close();
    await slapd?.close();
  });

  for (const frontend of ['socketmap', 'policy'] as const) {
    test(`${frontend}: a cached valid recipient is answered at once while ${FLOOD_CONNECTIONS} sessions of the same MTA wait for the directory`, async () => {
      const port = app.addresses[frontend]!.port;
      const victimSocket = await connectFrom(port);
      const flood = await Promise.all(Array.from({ length: FLOOD_CONNECTIONS }, () => connectFrom(port)));
      const victim = asker(victimSocket, frontend);
      const askers = flood.map((s) => asker(s, frontend));
      try {
        await cachedUnderFlood({
          victim: () => victim(question(frontend, 'user1@example.com', '192.0.2.7')),
          valid: frontend === 'socketmap' ? 'OK user1@example.com' : 'DUNNO',
          flood: (c, i) => askers[c]!(question(frontend, `ghost-${frontend}-${c}-${i}@example.com`, `198.51.100.${c % 250}`)),
          unknown: frontend === 'socketmap' ? 'NOTFOUND ' : '550 5.1.1 User unknown',
        });
      } finally {
        for (const s of flood) s.destroy();
        victimSocket.destroy();
      }
    });
  }

  test(`http: a cached valid recipient is answered at once while ${FLOOD_CONNECTIONS} keep-alive connections of the same client wait for the directory`, async () => {
    const port = app.addresses.http!.port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: FLOOD_CONNECTIONS + 1 });
    // The verdict, or the status when the answer is not a verdict.
    const get = (recipient: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: `/v1/recipients/${encodeURIComponent(recipient)}`, agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { verdict: string }).verdict : `HTTP ${res.statusCode}`));
        });
        req.on('error', reject);
      });
    try {
      await cachedUnderFlood({ victim: () => get('user1@example.com'), valid: 'valid', flood: (c, i) => get(`ghost-http-${c}-${i}@example.com`), unknown: 'unknown' });
    } finally {
      agent.destroy();
    }
  });
});
