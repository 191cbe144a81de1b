/**
 * One client address floods the socketmap from 200 connections with empty requests (3 bytes, each
 * answered at once with a 47-byte PERM), as fast as the sockets take them, reading every reply:
 * no directory work, only CPU. Each read used to be drained at once (a slice of it, then the rest
 * again at the next tick), so one turn of the event loop took every connection's whole read, and a
 * turn took tens of seconds: a second client's cached lookup on a new connection waited over 30 s
 * (Postfix's socketmap client gives up after 100 s; postmap waited over 100 s with 300 such
 * connections). Reads are now decoded 4 kB per connection and turn. Against `rcptgate serve`
 * (its own process) and a real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
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

/** Connects and asks one question; rejects past `BOUND_MS` rather than waiting for the 100-second answer. */
async function timedLookup(port: number, key: string): Promise<{ reply: string; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${key}: no answer within ${BOUND_MS} ms`)), BOUND_MS)));
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
    const chunk = '0:,'.repeat(20_000);
    const flood: net.Socket[] = [];
    let replies = 0;
    for (let i = 0; i < FLOOD_CONNECTIONS; i++) {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => (replies += d.length));
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('connect', pump).on('drain', pump);
      flood.push(s);
    }
    try {
      await sleep(3_000);
      const times: number[] = [];
      for (let k = 0; k < 4; k++) {
        const cached = await timedLookup(port, 'user1@example.com');
        assert.equal(cached.reply, 'OK user1@example.com');
        const cold = await timedLookup(port, `user${2 + k}@example.com`);
        assert.equal(cold.reply, `OK user${2 + k}@example.com`);
        times.push(cached.ms, cold.ms);
      }
      const open = flood.filter((s) => !s.destroyed).length;
      assert.ok(replies > 1_000_000, `the flood was answered meanwhile (${replies} bytes)`);
      assert.equal(open, FLOOD_CONNECTIONS, 'the flood connections stay open (they read their replies)');
      assert.ok(Math.max(...times) < BOUND_MS, `lookup times ${times.join(', ')} ms`);
    } finally {
      for (const s of flood) s.destroy();
    }
  });
});
