/**
 * A stranger who reaches the lookup port floods GET /metrics (open to anyone there, like /healthz)
 * against the real `rcptgate serve` on the bundled example directory, while an MTA asks the
 * socketmap. Each request rendered the whole exposition text, about a millisecond of the one event
 * loop every front end shares: 50 connections pipelining 64 scrapes each cost the service ~14
 * times the CPU per request of the same flood of /healthz, and the MTA's cached lookups waited
 * 1–1.5 s (p50) instead of ~0.1 s. Scrapes that arrive during a render now share it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

const CONNECTIONS = 50;
const PIPELINED = 64;
const FLOOD_MS = 5_000;
/** CPU per /metrics request over CPU per /healthz request: ~14 before, ~2 after. */
const MAX_CPU_RATIO = 5;

/** User plus system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** One connection pipelining PIPELINED GETs of `target`, again each time all are answered, until `until`. */
function flooder(port: number, target: string, until: number, answered: { n: number }): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let seen = 0;
    let tail = '';
    const round = (): void => {
      if (Date.now() >= until) {
        s.destroy();
        return;
      }
      seen = 0;
      s.write(`GET ${target} HTTP/1.1\r\nHost: rcptgate\r\n\r\n`.repeat(PIPELINED));
    };
    s.setEncoding('latin1');
    s.on('connect', round);
    s.on('data', (d: string) => {
      const text = tail + d;
      seen += text.match(/HTTP\/1\.1 200 /g)?.length ?? 0;
      tail = text.slice(-15);
      if (seen >= PIPELINED) {
        answered.n += seen;
        round();
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
  });
}

interface Flood {
  target: string;
  answered: number;
  cpuPerRequestUs: number;
  lookups: number;
  p50Ms: number;
}

/** Floods `target` while one socketmap client asks for a cached address, one query at a time. */
async function flood(serve: ServeProcess, target: string): Promise<Flood> {
  const pid = serve.child.pid!;
  const http = await listenerPort(serve, 'http');
  const sm = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
  try {
    assert.match(await sm.query('recipients', 'alice@example.com'), /^OK /);
    const until = Date.now() + FLOOD_MS;
    const answered = { n: 0 };
    const cpu0 = cpuSeconds(pid);
    const floods = Array.from({ length: CONNECTIONS }, () => flooder(http, target, until, answered));
    const lat: number[] = [];
    while (Date.now() < until) {
      const t = performance.now();
      assert.match(await sm.query('recipients', 'alice@example.com'), /^OK /);
      lat.push(performance.now() - t);
    }
    await Promise.all(floods);
    const cpu = cpuSeconds(pid) - cpu0;
    lat.sort((a, b) => a - b);
    assert.ok(answered.n > 0, `no ${target} request was answered`);
    return { target, answered: answered.n, cpuPerRequestUs: (cpu / answered.n) * 1e6, lookups: lat.length, p50Ms: lat[Math.floor(lat.length / 2)]! };
  } finally {
    sm.close();
  }
}

describe('GET /metrics flooded on the lookup port (real serve, real socketmap client)', () => {
  let serve: ServeProcess;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-metrics-flood-'));
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({ listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null }, log: { level: 'info' } }));
    serve = startServe(['--config', config]);
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('costs about what a flood of /healthz costs, and scrapes still see every lookup', async (t) => {
    const healthz = await flood(serve, '/healthz');
    const metrics = await flood(serve, '/metrics');
    const ratio = metrics.cpuPerRequestUs / healthz.cpuPerRequestUs;
    const report = JSON.stringify({ healthz, metrics, ratio: Number(ratio.toFixed(2)) });
    t.diagnostic(report);
    assert.ok(ratio < MAX_CPU_RATIO, `CPU per /metrics request is ${ratio.toFixed(1)}× that of /healthz (at most ${MAX_CPU_RATIO}×): ${report}`);

    // Shared renders are never reused once done: a scrape after a lookup counts it.
    const port = await listenerPort(serve, 'http');
    const count = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^rcptgate_lookups_total\{frontend="socketmap",verdict="valid"\} (\S+)$/m.exec(text)?.[1] ?? 0);
    };
    const sm = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    try {
      const before = await count();
      await sm.query('recipients', 'alice@example.com');
      assert.equal(await count(), before + 1);
      const together = await Promise.all([count(), count(), count()]);
      assert.deepEqual(together, [before + 1, before + 1, before + 1]);
    } finally {
      sm.close();
    }
  });
});
