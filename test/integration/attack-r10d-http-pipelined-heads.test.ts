/**
 * Pipelined HTTP requests with large heads against the real `rcptgate serve`, run with the V8 heap
 * Node picks under a 512 MiB container limit (--max-old-space-size=256), a real slapd behind it.
 * 980 connections from 4 loopback addresses (under every per-client and listener cap) each sent
 * 64 cold GETs with 14 kB of header fields (under server.maxPipeline and Node's 16 kB header cap)
 * and read nothing. Node parses pipelined requests at once, and each request waiting for its
 * turn at the directory held its head: the heap passed its limit and the process died of "heap
 * out of memory" (with V8's default heap it reached 963 MB), taking every front end with it.
 * A connection more than 64 kB of request heads ahead of its answers is now closed like one over
 * server.maxPipeline, and the service keeps answering.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sleep } from '../helpers/frontend-clients.js';
import { listenerPort, startHttpServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const CLIENTS = 4;
const PER_CLIENT = 245;
const PIPELINED = 64;
const PAD = 'p'.repeat(14_000);
const PEAK_RSS_MB = 400;

function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** A connection from `localAddress` that pipelines PIPELINED cold GETs with large heads and reads nothing. */
function flood(port: number, localAddress: string, tag: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.on('error', () => undefined);
    s.once('close', () => resolve(s));
    s.once('connect', () => {
      for (let i = 0; i < PIPELINED && !s.destroyed; i++) s.write(`GET /v1/recipients/${tag}-${i}@example.com HTTP/1.1\r\nHost: rcptgate\r\nX-Pad: ${PAD}\r\n\r\n`);
      resolve(s);
    });
  });
}

async function lookup(port: number, address: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`);
  await res.text();
  return res.status;
}

describe('pipelined HTTP requests with large heads (real serve, 256 MB heap, real slapd)', () => {
  let slapd: Slapd;
  let serve: ServeProcess;
  let stopServe: (() => Promise<void>) | undefined;
  const sockets: net.Socket[] = [];

  before(async () => {
    slapd = await startSlapd();
    ({ serve, stop: stopServe } = await startHttpServe({ ...slapd, url: slapd.url }, 'pipelined-heads', { NODE_OPTIONS: '--max-old-space-size=256' }));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await stopServe?.();
    await slapd?.close();
  });

  test('connections far ahead of their answers are closed; the process lives and answers others', async () => {
    const port = await listenerPort(serve, 'http');
    const pid = serve.child.pid!;
    assert.equal(await lookup(port, 'alice@example.com'), 200);
    for (let c = 0; c < CLIENTS; c++) {
      const opened = await Promise.all(Array.from({ length: PER_CLIENT }, (_, k) => flood(port, `127.0.0.${2 + c}`, `flood${c}-${k}`)));
      sockets.push(...opened);
    }
    await sleep(8_000);
    assert.equal(serve.child.exitCode, null, `the service is still running (stderr: ${serve.stderr.slice(-300)})`);
    assert.equal(await lookup(port, 'bob@example.com'), 200, 'another client is answered');
    const peak = peakRssMb(pid);
    assert.ok(peak < PEAK_RSS_MB, `peak RSS ${peak.toFixed(0)} MB must stay under ${PEAK_RSS_MB} MB`);
    assert.ok(
      serve.logs.some((l) => l.event === 'http_pipeline_exceeded'),
      'the closed connections are logged',
    );
  });
});
