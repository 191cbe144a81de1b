/**
 * slapd restarted under a steady load of 32 socketmap connections, each asking addresses nobody
 * asked before (so every lookup reaches the directory: batched searches, the hot path): once
 * stopped cleanly (SIGTERM: slapd closes every connection) and once killed (SIGKILL: the kernel
 * resets them). Every answer is checked against the truth (userN exists for N ≤ USERS, ghosts
 * never do): 0 wrong, TEMP only while slapd is away, and fresh lookups answered right within a few
 * seconds of its return, with no restart of rcptgate.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../../src/app/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { isTemp, isWrong, summary, type LookupSample } from '../helpers/lookup-samples.js';
import { startApp } from '../helpers/app.js';

const USERS = 20_000;
const CONNECTIONS = 32;
const TIMEOUT_MS = 1_000;
const RECOVERY_MS = 5_000;

type Sample = LookupSample;


describe('slapd restarted under 32 connections of cold lookups', { timeout: 120_000 }, () => {
  let slapd: Slapd;
  let app: App;
  let clients: SocketmapClient[] = [];
  before(async () => {
    slapd = await startSlapd({ generatedUsers: USERS });
    const config = {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms` } },
      log: { level: 'silent' },
    };
    app = await startApp(config, { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword });
    clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => SocketmapClient.connect(app.addresses.socketmap!.port)));
  });
  after(async () => {
    for (const c of clients) c.close();
    await app?.close();
    await slapd?.close();
  });

  test('a clean stop and a kill -9: 0 wrong answers, TEMP only while slapd is away, recovery within seconds', async () => {
    const t0 = Date.now();
    const samples: Sample[] = [];
    let seq = 0;
    let running = true;
    const loop = async (client: SocketmapClient): Promise<void> => {
      while (running) {
        const n = ++seq;
        // Half existing users (each asked once, while they last), half never-seen ghosts.
        const exists = n % 2 === 0 && n / 2 <= USERS;
        const address = exists ? `user${n / 2}@example.com` : `ghost${n}@example.com`;
        const at = Date.now() - t0;
        const reply = await client.query('recipients', address).catch(() => null);
        if (reply === null) return;
        samples.push({ exists, reply, at, ms: Date.now() - t0 - at });
      }
    };
    const loops = clients.map(loop);
    const now = () => Date.now() - t0;
    /** Time from `since` to the first moment after which 300 ms of answers hold no TEMP. */
    const recovery = async (since: number): Promise<number> => {
      for (;;) {
        await sleep(100);
        const recent = samples.filter((s) => s.at >= now() - 300);
        if (recent.length > 20 && !recent.some(isTemp)) return Math.max(0, Math.min(...recent.map((s) => s.at)) - since);
        if (now() - since > RECOVERY_MS * 3) return Infinity;
      }
    };
    const report: string[] = [];
    try {
      await sleep(1_500);
      assert.equal(samples.filter(isTemp).length, 0, `healthy: ${summary(samples)}`);
      for (const how of ['stop', 'kill'] as const) {
        const awayAt = now();
        await (how === 'stop' ? slapd.stop() : slapd.kill());
        await sleep(1_500);
        await slapd.start();
        const backAt = now();
        const took = await recovery(backAt);
        assert.ok(took <= RECOVERY_MS, `after a ${how}, lookups answered again ${took} ms after slapd was back; bound ${RECOVERY_MS} ms`);
        const away = samples.filter((s) => s.at >= awayAt && s.at < backAt);
        report.push(`${how}: ${summary(away)} while away, recovered ${took} ms after the start`);
        await sleep(1_000);
        const steady = samples.filter((s) => s.at >= backAt + took + 200 && s.at < now() - 100);
        assert.ok(steady.length > 100 && !steady.some(isTemp), `no TEMP once recovered: ${summary(steady)}`);
      }
    } finally {
      running = false;
      await Promise.all(loops);
    }
    assert.deepEqual(samples.filter(isWrong).slice(0, 3), [], `no wrong verdict: ${summary(samples)}`);
    console.log(`restarts under ${CONNECTIONS} connections: ${summary(samples)}; ${report.join('; ')}`);
  });
});
