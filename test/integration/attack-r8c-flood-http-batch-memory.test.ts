/**
 * A flood of large lookup batches against the real `rcptgate serve`: 1,000 connections from 8
 * loopback addresses (under the per-client cap), each posting a batch of about 240 kB (20 cold
 * addresses, 980 long invalid ones) while the directory is 300 ms away (a real slapd behind the
 * delay proxy: no real directory is slow on demand). Every batch was admitted, read and parsed
 * while its slow lookups ran: the process grew from about 120 MB to 1.9 GB, far past the chart's
 * 512 MiB memory limit, where the kernel kills every front end at once. Batches are now admitted
 * while their bodies fit 4 MB across all clients; past that they get 503 `busy` with
 * Retry-After before their body is read, and the process peaks near 240 MB.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { listenerPort, startHttpServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const CONNECTIONS = 1_000;
const CLIENTS = 8;
/** Peak RSS allowed: the chart's limit is 512 MiB; unbounded, this flood reached 1.9 GB. */
const PEAK_RSS_MB = 320;

/** The process's peak resident set (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** Posts `body` on a fresh connection from `localAddress`; resolves with the status line and headers (or 'closed'). */
function post(port: number, localAddress: string, body: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let head = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      head += c;
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(head.slice(0, end));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(head.length > 0 ? head : 'closed'));
    socket.on('connect', () => socket.write(`POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
  });
}

describe('a flood of large HTTP batches (real serve, real slapd 300 ms away)', () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  let serve: ServeProcess;
  let stopServe: (() => Promise<void>) | undefined;

  before(async () => {
    slapd = await startSlapd();
    proxy = await startDelayProxy(slapd.port, 300);
    ({ serve, stop: stopServe } = await startHttpServe({ ...slapd, url: proxy.url }, 'batch-flood'));
  });
  after(async () => {
    await stopServe?.();
    await proxy?.close();
    await slapd?.close();
  });

  test('batches past 4 MB in progress are refused with 503 busy before their bodies are read; memory stays bounded', async () => {
    const port = await listenerPort(serve, 'http');
    const pid = serve.child.pid!;
    const longInvalid = (i: number) => `${'x'.repeat(230)}${i}@example.com`;
    const body = (k: number) => JSON.stringify({ addresses: [...Array.from({ length: 20 }, (_, i) => `flood${k}-${i}@example.com`), ...Array.from({ length: 980 }, (_, i) => longInvalid(i))] });
    const before = peakRssMb(pid);
    const heads = await Promise.all(Array.from({ length: CONNECTIONS }, (_, k) => post(port, `127.0.0.${2 + (k % CLIENTS)}`, body(k))));
    const peak = peakRssMb(pid);
    const statuses = new Map<string, number>();
    for (const h of heads) statuses.set(h.split('\r\n')[0]!, (statuses.get(h.split('\r\n')[0]!) ?? 0) + 1);
    const busy = heads.filter((h) => h.startsWith('HTTP/1.1 503') && /^retry-after: 1$/im.test(h) && /^connection: close$/im.test(h));
    assert.ok((statuses.get('HTTP/1.1 200 OK') ?? 0) >= 10, `batches within the budget are answered: ${JSON.stringify([...statuses])}`);
    assert.ok(busy.length > 0, `the rest are refused with 503, Retry-After and Connection: close: ${JSON.stringify([...statuses])}`);
    assert.equal((statuses.get('HTTP/1.1 200 OK') ?? 0) + busy.length, CONNECTIONS, `every batch is answered 200 or 503 busy: ${JSON.stringify([...statuses])}`);
    assert.ok(peak < PEAK_RSS_MB, `peak RSS ${peak.toFixed(0)} MB (before the flood ${before.toFixed(0)} MB) must stay under ${PEAK_RSS_MB} MB`);
  });
});
