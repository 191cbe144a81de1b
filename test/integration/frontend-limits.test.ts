/**
 * The socket front ends under hostile peers, against the real app and a real slapd:
 *  - no work continues for a closed connection (its waiting requests are dropped, not run);
 *  - one peer holding 1,100 idle connections does not stop another peer's lookups, and the
 *    refusals are logged at a limited rate;
 *  - a peer trickling bytes (slowloris) and a milter peer that never negotiates are closed;
 *  - /healthz on listen.metrics answers while the HTTP port is flooded with idle connections;
 *  - a peer that sends its requests and then FIN still gets every (uncached) answer.
 * Another loopback address (127.0.0.2) stands for a second peer.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Writable } from 'node:stream';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import {
  closedWithin,
  connectFrom,
  milterOptneg,
  netstring,
  netstrings,
  policyActions,
  policyRequest,
  readUntilClose,
  sleep,
} from '../helpers/frontend-clients.js';

const IDLE_FLOOD = 1_100;

async function appFor(ldap: Slapd, server: Record<string, unknown>, logs: string[]): Promise<App> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const app = await createApp({
    loaded: {
      config: validateConfig({
        listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: '127.0.0.1:0' },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        cache: { maxEntries: 0 },
        policy: { harvest: { maxUnknown: 0 } },
        server,
        log: { level: 'info' },
      }),
      file: null,
    },
    logger: createLogger('info', sink),
    env: { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
  });
  await app.start();
  return app;
}

/** GET `path` on loopback `port` from `localAddress`; resolves to the status code. */
function getFrom(port: number, path: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function metric(app: App, name: string, labels = ''): Promise<number> {
  const text = await app.metrics.registry.metrics();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  }
  return sum;
}

describe('socket front ends under hostile peers (real slapd)', () => {
  let ldap: Slapd;
  let app: App;
  const logs: string[] = [];

  before(async () => {
    ldap = await startSlapd();
    app = await appFor(ldap, { requestTimeout: '1s' }, logs);
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('no work continues for a closed connection: its waiting requests are dropped, not run', async () => {
    // Lookups the engine answered for policy (a directory request may count several times:
    // retries, batches; a lookup counts once).
    const policyLookups = () => metric(app, 'rcptgate_lookups_total', 'frontend="policy"');
    const before = await policyLookups();
    const s = await connectFrom(app.addresses.policy!.port);
    // Hold the directory so the lookups started are still running when the client leaves.
    await ldap.pause();
    let atClose: number;
    try {
      s.write(Array.from({ length: 3_000 }, (_, i) => policyRequest(`gone-${i}@example.com`)).join(''));
      await sleep(300);
      s.resetAndDestroy(); // gone for good (RST), not a half-close that still wants answers
      atClose = await policyLookups();
      await sleep(200);
    } finally {
      ldap.resume();
    }
    await sleep(4_000); // the directory timeout (3 s) settles whatever was running
    const after = await policyLookups();
    // A paused socket reports the peer's reset only when we next write to it: what was running at
    // the close (server.maxPipeline, 64) and at most one more pipeline's worth started before that
    // write fails. The thousands still waiting are dropped.
    assert.ok(after - atClose <= 2 * 64, `lookups finished after the close: ${after - atClose} (3,000 sent, ${atClose - before} answered before)`);
    assert.ok(after - before < 1_000, `lookups in all: ${after - before} of 3,000 sent`);
  });

  test(`a peer holding ${IDLE_FLOOD} idle connections does not stop another peer's lookups`, async () => {
    for (const frontend of ['socketmap', 'policy', 'milter'] as const) {
      const port = app.addresses[frontend]!.port;
      const hostile: net.Socket[] = [];
      try {
        for (let i = 0; i < IDLE_FLOOD; i++) hostile.push(await connectFrom(port, '127.0.0.1'));
        await sleep(200);
        const kept = hostile.filter((s) => !s.destroyed).length;
        assert.ok(kept <= 300, `${frontend}: one peer kept ${kept} connections (cap 300)`);
        const honest = await connectFrom(port, '127.0.0.2');
        const replies = readUntilClose(honest);
        if (frontend === 'socketmap') honest.end(netstring('recipients alice@example.com') + netstring('recipients nobody@example.com'));
        if (frontend === 'policy') honest.end(policyRequest('alice@example.com') + policyRequest('nobody@example.com'));
        if (frontend === 'milter') honest.end(milterOptneg());
        const got = await replies;
        if (frontend === 'socketmap') assert.deepEqual(netstrings(got), ['OK alice@example.com', 'NOTFOUND ']);
        if (frontend === 'policy') assert.deepEqual(policyActions(got), ['DUNNO', '550 5.1.1 User unknown']);
        if (frontend === 'milter') assert.equal(got[4], 'O'.charCodeAt(0), 'option negotiation answered');
      } finally {
        for (const s of hostile) s.destroy();
      }
      await sleep(300);
    }
    const refusedLines = logs.filter((l) => l.includes('per-client connection limit reached')).length;
    assert.ok(refusedLines <= 30, `refusals are logged at a limited rate (${refusedLines} lines)`);
    const suppressed = await metric(app, 'rcptgate_log_suppressed_total');
    const refused = await metric(app, 'rcptgate_connections_rejected_total');
    // Fewer on the milter: silent, unnegotiated connections are closed after the request timeout,
    // which frees slots while the flood is still opening connections.
    assert.ok(refused >= 2 * (IDLE_FLOOD - 300), `refused: ${refused}`);
    assert.ok(suppressed >= refused - refusedLines, `the rest are counted (${suppressed} suppressed of ${refused} refused, ${refusedLines} logged)`);
  });

  test('a peer trickling a request one byte at a time is closed after server.requestTimeout', async () => {
    for (const frontend of ['socketmap', 'policy'] as const) {
      const s = await connectFrom(app.addresses[frontend]!.port);
      const closed = closedWithin(s);
      const text = frontend === 'socketmap' ? netstring('recipients alice@example.com') : policyRequest('alice@example.com');
      const timer = setInterval(() => {
        if (!s.destroyed) s.write(text.slice(0, 1));
      }, 200);
      try {
        const took = await Promise.race([closed, sleep(8_000).then(() => -1)]);
        assert.ok(took > 0 && took < 6_000, `${frontend}: slowloris closed after ${took} ms (request timeout 1 s, idle timeout 5 min)`);
      } finally {
        clearInterval(timer);
        s.destroy();
      }
    }
  });

  test('a milter peer that connects and never negotiates is closed; a negotiated one may stay silent', async () => {
    const silent = await connectFrom(app.addresses.milter!.port);
    const negotiated = await connectFrom(app.addresses.milter!.port);
    negotiated.write(milterOptneg());
    const took = await Promise.race([closedWithin(silent), sleep(8_000).then(() => -1)]);
    assert.ok(took > 0 && took < 6_000, `silent milter connection closed after ${took} ms`);
    assert.equal(negotiated.destroyed, false, 'an MTA may stay silent while a message arrives with DATA skipped');
    negotiated.destroy();
  });

  test('/healthz and /readyz on listen.metrics answer while the HTTP port is flooded with idle connections', async () => {
    const httpPort = app.addresses.http!.port;
    const flood: net.Socket[] = [];
    let stop = false;
    // Keep 1,000 idle connections open, reopening them as they are closed.
    const keep = async (): Promise<void> => {
      while (!stop) {
        const s = await connectFrom(httpPort).catch(() => null);
        if (s) {
          flood.push(s);
          await new Promise<void>((r) => s.once('close', () => r()));
        }
        await sleep(100);
      }
    };
    const keepers = Array.from({ length: 1_000 }, () => keep());
    try {
      await sleep(1_500);
      const base = `http://127.0.0.1:${app.addresses.metrics!.port}`;
      let ok = 0;
      for (let i = 0; i < 13; i++) {
        const res = await fetch(`${base}${i % 2 ? '/readyz' : '/healthz'}`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
        if (res?.status === 200) ok++;
        await res?.body?.cancel();
        await sleep(100);
      }
      assert.equal(ok, 13, 'every probe answered');
      // The flooding address holds at most server.maxConnectionsPerClient of listen.http: another
      // address still gets through there too.
      assert.equal(await getFrom(httpPort, '/healthz', '127.0.0.2'), 200);
      const scrape = await fetch(`${base}/metrics`);
      assert.match(await scrape.text(), /rcptgate_connections\{frontend="http"\}/);
      assert.equal((await fetch(`${base}/v1/recipients/alice%40example.com`)).status, 404, 'the probe listener serves no lookups');
    } finally {
      stop = true;
      for (const s of flood) s.destroy();
      await Promise.race([Promise.all(keepers), sleep(5_000)]);
    }
  });

  test('a peer that sends its requests and then FIN still gets every uncached answer', async () => {
    const sm = await connectFrom(app.addresses.socketmap!.port);
    const smReplies = readUntilClose(sm);
    sm.end(['alice', 'bob', 'nobody', 'carol.mixed'].map((u) => netstring(`recipients ${u}@example.com`)).join(''));
    const policy = await connectFrom(app.addresses.policy!.port);
    const policyReplies = readUntilClose(policy);
    policy.end(policyRequest('alice@example.com') + policyRequest('nobody2@example.com'));
    assert.deepEqual(netstrings(await smReplies), ['OK alice@example.com', 'OK bob@example.com', 'NOTFOUND ', 'OK Carol.Mixed@example.com']);
    assert.deepEqual(policyActions(await policyReplies), ['DUNNO', '550 5.1.1 User unknown']);
  });
});
