/**
 * Log lines a hostile client can cause on every front end of the real `rcptgate serve` (bundled
 * example directory, info level): floods of malformed HTTP, wrong admin and lookup tokens, bad
 * netstrings, oversized policy requests, bad milter packets, and malformed requests to the
 * metrics listener. Each kind may log at most 10 lines a minute (the rest counted in
 * rcptgate_log_suppressed_total), so a client cannot fill the disk or burn CPU on logging; control
 * characters sent by the client never reach a log line raw.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';

const PER_KIND = 300;
const LINES_PER_KIND = 10;

/** Sends `data` on a new connection and waits for the close (or gives up after 2 s). */
function send(port: number, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const t = setTimeout(() => s.destroy(), 2_000);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    s.end(data);
  });
}

describe('log lines under floods of hostile requests (real serve, every front end)', () => {
  let serve: ServeProcess;
  let dir: string;
  let raw = '';

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-log-flood-'));
    await writeFile(path.join(dir, 'admin-token'), 'admin-token-of-the-flood-test\n');
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: '127.0.0.1:0' },
      admin: { tokenFile: path.join(dir, 'admin-token') },
      http: { lookupTokenFile: path.join(dir, 'admin-token'), lookupAllowFrom: ['::1/128'] },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', config]);
    serve.child.stdout!.on('data', (c: Buffer) => (raw += c.toString('utf8')));
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(`${PER_KIND} hostile requests of each kind log at most ${LINES_PER_KIND} lines of that kind, escaped`, async () => {
    const port = async (name: string): Promise<number> => listenerPort(serve, name);
    const http = await port('http');
    const metricsLine = await serve.waitForLog((l) => l.msg === 'listening' && l.listener === 'metrics');
    const metrics = Number(String(metricsLine.address).split(':').pop());
    const [socketmap, policy, milter] = [await port('socketmap'), await port('policy'), await port('milter')];
    const esc = '\x1b[2J\x1b[31m\r\nforged: line';
    const kinds: Array<[string, (i: number) => Promise<unknown>]> = [
      ['http malformed', (i) => send(http, `GET /x${i} HTTP/1.1\r\nHost: a\r\nBad Header\x1b: ${esc}\r\n\r\n`)],
      ['http wrong admin token', (i) => fetch(`http://127.0.0.1:${http}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer w${i}` } }).then((r) => r.text())],
      ['http wrong lookup token', (i) => fetch(`http://127.0.0.1:${http}/v1/recipients/${encodeURIComponent(`${esc}${i}@example.com`)}`, { headers: { authorization: `Bearer w${i}` } }).then((r) => r.text())],
      ['http no token', (i) => fetch(`http://127.0.0.1:${http}/v1/recipients/x${i}@example.com`).then((r) => r.text())],
      ['socketmap bad netstring', (i) => send(socketmap, `${i}x:${esc},`)],
      ['policy oversized', () => send(policy, `request=smtpd_access_policy\nrecipient=${'a'.repeat(20_000)}${esc}\n\n`)],
      ['milter bad packet', () => send(milter, Buffer.from([0, 0, 0, 5, 0x7f, 0x1b, 0x5b, 0x32, 0x4a]))],
      ['metrics malformed', () => send(metrics, `GET /metrics HTTP/1.1\r\n${esc}\r\n\r\n`)],
    ];
    const counts: Record<string, number> = {};
    for (const [kind, hit] of kinds) {
      const before = serve.logs.length;
      for (let i = 0; i < PER_KIND; i += 25) await Promise.all(Array.from({ length: 25 }, (_, k) => hit(i + k)));
      await new Promise((r) => setTimeout(r, 200));
      const lines = serve.logs.slice(before).filter((l) => l.level !== undefined && Number(l.level) >= 40);
      counts[kind] = lines.length;
    }
    for (const [kind, n] of Object.entries(counts)) assert.ok(n <= LINES_PER_KIND, `${kind}: ${n} warning lines for ${PER_KIND} requests: ${JSON.stringify(counts)}`);
    // Every line is one JSON object: nothing a client sent split a line or reached it raw.
    for (const line of raw.split('\n').filter(Boolean)) {
      assert.doesNotThrow(() => JSON.parse(line), `a log line is not JSON: ${line.slice(0, 200)}`);
      assert.ok(!/[\x00-\x1f\x7f]/.test(line), `a raw control character in a log line: ${JSON.stringify(line.slice(0, 200))}`);
    }
    assert.ok(!raw.includes('admin-token-of-the-flood-test'), 'no token in the logs');
    const scrape = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
    const suppressed = [...scrape.matchAll(/^rcptgate_log_suppressed_total\{[^}]*\} (\S+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
    assert.ok(suppressed > 0, 'the lines left out are counted');
  });
});
