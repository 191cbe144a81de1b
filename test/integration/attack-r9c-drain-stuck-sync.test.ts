/**
 * SIGTERM while an incremental sync's removal checks (sync.detectRemovals) bind to a directory
 * that has stopped answering (a firewall dropping new flows). Shutdown waited for the sync to
 * stop before it closed the listeners, and that bind does not hear the stop: for the whole LDAP
 * timeout (per URL) the lookup port kept accepting, the drain had not begun and the answer file
 * was not saved; with the chart's 30 s grace period a pod could be killed first. The drain now
 * starts at once and a sync that does not stop gets the drain time once more.
 * Real slapd behind the fault proxy (new connections blackholed), real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const DRAIN_MS = 2_000;
const LDAP_TIMEOUT = '8s';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

describe('SIGTERM while a sync waits on a directory that stopped answering (real slapd)', () => {
  let ldap: Slapd;
  let proxy: FaultProxy;
  let dir: string;
  let p: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    proxy = await startFaultProxy(ldap.port);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-drain-'));
  });
  after(async () => {
    await p?.kill();
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the listeners close at once and the process exits within the drain time', async () => {
    const cfg = path.join(dir, 'rcptgate.json');
    await writeFile(
      cfg,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: LDAP_TIMEOUT } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '1s', detectRemovals: true },
        cache: { persistPath: path.join(dir, 'answers') },
        server: { drainTimeout: `${DRAIN_MS}ms` },
        log: { level: 'debug' },
      }),
    );
    p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(p, 'http');
    await p.waitForLog((l) => l.msg === 'full sync done');
    await p.waitForLog((l) => l.msg === 'incremental sync done');
    const alice = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/alice@example.com`)).json()) as { verdict: string };
    assert.equal(alice.verdict, 'valid');

    // New connections now get no answer: the next incremental sync's removal checks open one.
    const opened = proxy.connections.length;
    proxy.mode = 'blackhole';
    await until('the removal checks connect to the silent directory', () => proxy.connections.length > opened, 10_000, 20);
    await new Promise((r) => setTimeout(r, 200));

    const t0 = performance.now();
    p.child.kill('SIGTERM');
    let closedAfter = Infinity;
    while (performance.now() - t0 < 6_000) {
      if (await refused(port)) {
        closedAfter = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const code = await p.exited;
    const exitedAfter = performance.now() - t0;
    assert.ok(closedAfter < 1_000, `the lookup port kept accepting for ${closedAfter.toFixed(0)} ms after SIGTERM`);
    assert.equal(code, 0);
    assert.ok(exitedAfter < DRAIN_MS * 2 + 1_500, `exited ${exitedAfter.toFixed(0)} ms after SIGTERM (drain ${DRAIN_MS} ms, LDAP timeout ${LDAP_TIMEOUT})`);
    assert.ok(p.logs.some((l) => l.msg === 'cached answers saved'), 'the answer file is saved');
  });
});
