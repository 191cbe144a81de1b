/**
 * A directory 300 ms away (a proxy delaying each direction 150 ms) while one client floods
 * socketmap with distinct unknown addresses at full speed, from several connections. Another
 * client, the MTA, asks cold valid users one at a time and cached ones: every cold one is answered
 * valid (never TEMP, never unknown), the cached ones at once, and the directory is never reported
 * failing (no breaker opening, no connection dropped as silent). Held on the code of this commit;
 * a regression guard for the queue, batching, breaker and silent-connection rules under a flood.
 * Real slapd, the real service, real sockets.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startAppWithLogs } from '../helpers/r12b-app-logs.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { until } from '../helpers/wait.js';

const ATTACKERS = 8;
/** Requests each attacker connection keeps unanswered. */
const WINDOW = 200;

/** One flooding connection: distinct unknown addresses, WINDOW of them always unanswered. */
function flood(port: number, tag: number): { answered: () => number; temp: () => number; stop: () => void } {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let sent = 0;
  let answered = 0;
  let temp = 0;
  let buf = '';
  let stopped = false;
  const send = (n: number) => {
    let out = '';
    for (let i = 0; i < n; i++) {
      const req = `recipients nobody-${tag}-${sent++}-${Math.random().toString(36).slice(2)}@example.com`;
      out += `${req.length}:${req},`;
    }
    socket.write(out);
  };
  socket.on('connect', () => send(WINDOW));
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buf += chunk.toString('latin1');
    let got = 0;
    for (;;) {
      const colon = buf.indexOf(':');
      if (colon < 0) break;
      const len = Number(buf.slice(0, colon));
      if (buf.length < colon + len + 2) break;
      if (buf.startsWith('TEMP', colon + 1)) temp++;
      buf = buf.slice(colon + len + 2);
      got++;
    }
    answered += got;
    if (!stopped && got > 0) send(got);
  });
  return {
    answered: () => answered,
    temp: () => temp,
    stop: () => {
      stopped = true;
      socket.destroy();
    },
  };
}

describe('a flood of unknown addresses against a directory 300 ms away (real slapd, the real service)', { timeout: 240_000 }, () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 200 });
    proxy = await startDelayProxy(slapd.port, 150);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test("the MTA's cold valid users are all answered valid, cached ones at once; the directory never reported failing", async () => {
    const { app, lines } = await startAppWithLogs(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    const port = app.addresses.socketmap!.port;
    const mta = await SocketmapClient.connect(port);
    const floods: ReturnType<typeof flood>[] = [];
    try {
      await until('the directory answers', async () => (await mta.query('recipients', 'bob@example.com')) === 'OK bob@example.com', 30_000, 200);
      for (let i = 0; i < ATTACKERS; i++) floods.push(flood(port, i));
      await until('the flood runs', () => floods.reduce((n, f) => n + f.answered(), 0) > 2_000, 60_000, 100);
      const cold: string[] = [];
      const cachedMs: number[] = [];
      for (let k = 1; k <= 40; k++) {
        const reply = await mta.query('recipients', `user${k}@example.com`);
        if (reply !== `OK user${k}@example.com`) cold.push(`user${k}: ${reply}`);
        const t = performance.now();
        const cached = await mta.query('recipients', 'bob@example.com');
        cachedMs.push(performance.now() - t);
        assert.equal(cached, 'OK bob@example.com');
      }
      const answered = floods.reduce((n, f) => n + f.answered(), 0);
      assert.deepEqual(cold, [], `cold valid users not answered valid during the flood (${answered} flood answers)`);
      cachedMs.sort((a, b) => a - b);
      assert.ok(cachedMs[Math.floor(cachedMs.length / 2)]! < 250, `cached answer median ${Math.round(cachedMs[20]!)} ms`);
      const failing = lines.filter((l) => /circuit open|silent for half the timeout|directory is failing/.test(l));
      assert.deepEqual(failing.slice(0, 2), [], `${failing.length} lines reporting the directory failing`);
      // For the record when it fails elsewhere: how hard the flood pushed.
      console.log(`flood answers ${answered}, flood TEMP ${floods.reduce((n, f) => n + f.temp(), 0)}, cached p50 ${cachedMs[20]!.toFixed(1)} ms`);
    } finally {
      for (const f of floods) f.stop();
      mta.close();
      await app.close();
    }
  });
});
