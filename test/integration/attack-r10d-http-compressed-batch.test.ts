/**
 * Compressed lookup batches against the batch budget, on the real `rcptgate serve` with the
 * directory 300 ms away (a real slapd behind the delay proxy: no real directory is slow on
 * demand). The budget (4 MB of batch bodies in progress) counted a batch by its Content-Length,
 * which for a body sent with Content-Encoding br or gzip is its compressed size, while the
 * service holds the body decoded (up to 256 kB) plus the lookups it starts. A 240 kB batch of
 * long repetitive addresses compresses to about 1 kB: 240 such batches from 4 loopback addresses
 * were all admitted at once and the process grew from about 110 MB to over 600 MB, where plain
 * bodies of the same size get 503 `busy` past the budget. A compressed body now counts as the
 * body limit, as a chunked one does.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { brotliCompressSync, constants } from 'node:zlib';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { listenerPort, startHttpServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const CONNECTIONS = 240;
const CLIENTS = 4;
/** Peak RSS allowed; admitted without bound, this flood passed 600 MB. */
const PEAK_RSS_MB = 320;

/** The process's peak resident set (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** Posts a brotli-compressed `body` from `localAddress`; resolves with the status line and headers (or 'closed'). */
function postCompressed(port: number, localAddress: string, body: Buffer): Promise<string> {
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
    socket.on('connect', () => {
      socket.write(`POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nContent-Encoding: br\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body);
    });
  });
}

describe('compressed HTTP batches against the batch budget (real serve, real slapd 300 ms away)', () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  let serve: ServeProcess;
  let stopServe: (() => Promise<void>) | undefined;

  before(async () => {
    slapd = await startSlapd();
    proxy = await startDelayProxy(slapd.port, 300);
    ({ serve, stop: stopServe } = await startHttpServe({ ...slapd, url: proxy.url }, 'compressed-batch'));
  });
  after(async () => {
    await stopServe?.();
    await proxy?.close();
    await slapd?.close();
  });

  test('a compressed batch counts as the body limit: past the budget they get 503 busy and memory stays bounded', async () => {
    const port = await listenerPort(serve, 'http');
    const pid = serve.child.pid!;
    // 4 cold addresses wait for the slow directory; 996 long invalid ones make the body 240 kB.
    const body = (k: number) => {
      const addresses = [...Array.from({ length: 4 }, (_, i) => `flood${k}-${i}@example.com`), ...Array.from({ length: 996 }, (_, i) => `${'x'.repeat(230)}${i}@example.com`)];
      return brotliCompressSync(Buffer.from(JSON.stringify({ addresses })), { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
    };
    const bodies = Array.from({ length: CONNECTIONS }, (_, k) => body(k));
    assert.ok(bodies[0]!.length < 4_096, `the compressed body is small on the wire (${bodies[0]!.length} bytes)`);
    const before = peakRssMb(pid);
    const heads = await Promise.all(bodies.map((b, k) => postCompressed(port, `127.0.0.${2 + (k % CLIENTS)}`, b)));
    const peak = peakRssMb(pid);
    const statuses = new Map<string, number>();
    for (const h of heads) statuses.set(h.split('\r\n')[0]!, (statuses.get(h.split('\r\n')[0]!) ?? 0) + 1);
    const seen = JSON.stringify([...statuses]);
    const busy = heads.filter((h) => h.startsWith('HTTP/1.1 503') && /^retry-after: 1$/im.test(h));
    assert.ok((statuses.get('HTTP/1.1 200 OK') ?? 0) >= 8, `batches within the budget are answered: ${seen}`);
    assert.ok(busy.length > 0, `compressed batches past the budget are refused with 503 busy: ${seen}`);
    assert.equal((statuses.get('HTTP/1.1 200 OK') ?? 0) + busy.length, CONNECTIONS, `every batch is answered 200 or 503 busy: ${seen}`);
    assert.ok(peak < PEAK_RSS_MB, `peak RSS ${peak.toFixed(0)} MB (before the flood ${before.toFixed(0)} MB) must stay under ${PEAK_RSS_MB} MB`);
  });
});
