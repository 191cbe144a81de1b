/**
 * One client address floods the socketmap from 200 connections with empty requests (3 bytes, each
 * answered at once with a 47-byte PERM), as fast as the sockets take them, reading every reply:
 * no directory work, only CPU. Each read used to be drained at once (a slice of it, then the rest
 * again at the next tick), so one turn of the event loop took every connection's whole read, and a
 * turn took tens of seconds: a second client's cached lookup on a new connection got no answer
 * within 60 s (Postfix's socketmap client gives up after 100 s; postmap waited over 100 s with 300
 * such connections). Reads are now decoded 4 kB per connection and turn: about 0.5 s. Against
 * `rcptgate serve` (its own process) and a real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sleep } from '../helpers/frontend-clients.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const FLOOD_CONNECTIONS = 200;
/** A second client's lookup, connection included: about 0.5 s measured under this flood; over 30 s before. */
const BOUND_MS = 10_000;

/**
 * argv: port, connections. Each connection, from 127.0.0.2, writes empty requests whenever its
 * socket takes them and reads every reply; prints "<open connections> <reply bytes>" each second.
 */
const FLOOD_SCRIPT = `
const net = require('node:net');
const [port, count] = process.argv.slice(1).map(Number);
const chunk = '0:,'.repeat(20000);
const socks = [];
let replies = 0;
for (let i = 0; i < count; i++) {
  const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  s.on('error', () => {});
  s.on('data', (d) => (replies += d.length));
  const pump = () => { while (!s.destroyed && s.write(chunk)); };
  s.on('connect', pump).on('drain', pump);
  socks.push(s);
}
setInterval(() => console.log(socks.filter((s) => !s.destroyed).length + ' ' + replies), 1000);
`;

/** Connects and asks one question; rejects past `limitMs` rather than waiting for the 100-second answer. */
async function timedLookup(port: number, key: string, limitMs = BOUND_MS): Promise<{ reply: string; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${key}: no answer within ${limitMs} ms`)), limitMs)));
  let client: SocketmapClient | undefined;
  try {
    const ask = SocketmapClient.connect(port).then((c) => (client = c).query('recipients', key));
    const reply = await Promise.race([ask, late]);
    return { reply, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
    client?.close();
  }
}

describe('a CPU flood from 200 connections of one client (rcptgate serve, real slapd)', { timeout: 180_000 }, () => {
  let slapd: Slapd;
  let serve: ServeProcess;
  let dir: string;

  before(async () => {
    slapd = await startSlapd({ generatedUsers: 20 });
    dir = await mkdtemp(join(tmpdir(), 'rcptgate-cpu-flood-'));
    const config = join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
      log: { level: 'warn' },
    }));
    serve = startServe(['--config', config], { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword, RCPTGATE_LOG_LEVEL: 'info' });
  });
  after(async () => {
    await serve?.kill();
    await slapd?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("another client's cached and cold lookups are answered within seconds, not minutes", async () => {
    const port = await listenerPort(serve, 'socketmap');
    assert.equal((await timedLookup(port, 'user1@example.com')).reply, 'OK user1@example.com');
    // The flood runs in a process of its own, so that reading its replies does not delay ours.
    const flood = spawn(process.execPath, ['-e', FLOOD_SCRIPT, String(port), String(FLOOD_CONNECTIONS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let report = '';
    flood.stdout!.setEncoding('utf8').on('data', (c: string) => (report = c.trim().split('\n').pop()!));
    try {
      await sleep(3_000);
      // The first lookup once the flood runs may wait for the flood's first reads (up to 10 s seen);
      // the bound is for the steady state after it.
      await timedLookup(port, 'user1@example.com', 60_000);
      const times: number[] = [];
      for (let k = 0; k < 4; k++) {
        const cached = await timedLookup(port, 'user1@example.com');
        assert.equal(cached.reply, 'OK user1@example.com');
        const cold = await timedLookup(port, `user${2 + k}@example.com`);
        assert.equal(cold.reply, `OK user${2 + k}@example.com`);
        times.push(cached.ms, cold.ms);
      }
      const [open, replies] = report.split(' ').map(Number) as [number, number];
      assert.ok(replies > 1_000_000, `the flood was answered meanwhile (${report})`);
      assert.equal(open, FLOOD_CONNECTIONS, `the flood connections stay open (they read their replies): ${report}`);
      assert.ok(Math.max(...times) < BOUND_MS, `lookup times ${times.join(', ')} ms`);
    } finally {
      const exited = new Promise((r) => flood.once('exit', r));
      flood.kill('SIGKILL');
      await exited;
    }
  });
});
