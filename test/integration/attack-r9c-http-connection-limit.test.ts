/**
 * Connections past `server.maxConnections` on the HTTP listener. Node closes them itself, and
 * rcptgate neither counted nor logged them: rcptgate_connections_rejected_total (documented as
 * "refused at server.maxConnections or server.maxConnectionsPerClient") stayed 0 while MTAs and
 * API clients were turned away, and the log said nothing. They are counted and logged (rate
 * limited) now. Real slapd, real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const MAX = 5;
const EXTRA = 3;

/** Opens a connection and resolves once it is established; 'closed' tells whether the server closed it. */
function connect(port: number): Promise<net.Socket & { closedByServer?: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }) as net.Socket & { closedByServer?: boolean };
    s.on('error', () => undefined);
    s.on('close', () => (s.closedByServer = true));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('HTTP connections past server.maxConnections (real slapd)', () => {
  let ldap: Slapd;
  let dir: string;
  let p: ServeProcess | undefined;
  const sockets: net.Socket[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-maxconn-'));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await p?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('are counted in rcptgate_connections_rejected_total and logged', async () => {
    const cfg = path.join(dir, 'rcptgate.json');
    await writeFile(
      cfg,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        server: { maxConnections: MAX },
      }),
    );
    p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const http = await listenerPort(p, 'http');
    const metricsLine = await p.waitForLog((l) => l.msg === 'listening' && l.listener === 'metrics');
    const metrics = Number(String(metricsLine.address).split(':').pop());

    for (let i = 0; i < MAX; i++) sockets.push(await connect(http));
    const extra: Array<net.Socket & { closedByServer?: boolean }> = [];
    for (let i = 0; i < EXTRA; i++) extra.push(await connect(http));
    sockets.push(...extra);
    await until('the connections past the limit are closed', () => extra.every((s) => s.closedByServer === true), 5_000, 20);

    const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
    const rejected = Number(/^rcptgate_connections_rejected_total\{frontend="http"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    assert.equal(rejected, EXTRA, 'each connection refused at server.maxConnections is counted');
    const line = await p.waitForLog((l) => l.msg === 'connection limit reached, refusing', 3_000);
    assert.equal(line.maxConnections, MAX);
  });
});
