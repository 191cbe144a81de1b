/**
 * A SIGHUP that arrives while `rcptgate serve` drains after SIGTERM (a config management run
 * that both reloads and restarts, a reloader reacting to the same change as the stop). The
 * reload ran: with domain settings changed it installed an engine with an empty cache, and the
 * shutdown then saved that empty cache as the answer file, so the restart, during a directory
 * outage, had forgotten every recipient it had confirmed. A stopping process now ignores SIGHUP,
 * and a reload still checking its new directory when SIGTERM comes installs nothing.
 * Real slapd (behind the delay proxy for the slow check), real serve processes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const DRAIN_MS = 3_000;

describe('SIGHUP during the drain after SIGTERM (real slapd)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-hup-drain-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The config file, rewritten in place as a config management run would. */
  const writeConfig = (cfg: string, url: string, domains: string[], timeout = '4s') =>
    writeFile(
      cfg,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains,
        directory: { kind: 'ldap', ldap: { urls: [url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout } },
        cache: { persistPath: path.join(path.dirname(cfg), 'answers') },
        server: { drainTimeout: `${DRAIN_MS}ms` },
      }),
    );
  const ask = async (p: number, address: string) => ((await (await fetch(`http://127.0.0.1:${p}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;

  /**
   * Confirms alice, rewrites the config with a domain added, then `signals` runs (SIGTERM and
   * SIGHUP in some order) while a request still arriving keeps the drain going. Then the
   * directory stops and the service restarts: alice must still be known.
   */
  async function scenario(name: string, url: string, signals: (p: ServeProcess) => Promise<void>): Promise<ServeProcess> {
    const cfg = path.join(dir, name, 'rcptgate.json');
    await mkdir(path.dirname(cfg));
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    await writeConfig(cfg, url, ['example.com']);
    const first = startServe(['--config', cfg], env);
    procs.push(first);
    const port = await listenerPort(first, 'http');
    assert.equal(await ask(port, 'alice@example.com'), 'valid');
    const slow = net.connect({ port, host: '127.0.0.1' });
    slow.on('error', () => undefined);
    await new Promise((r) => slow.once('connect', r));
    slow.write('POST /v1/recipients:check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"addr');
    await writeConfig(cfg, url, ['example.com', 'example.org'], '5s'); // a new directory: the reload checks it
    await signals(first);
    assert.equal(await first.exited, 0);
    slow.destroy();
    assert.ok(!first.logs.some((l) => String(l.msg).startsWith('configuration reloaded')), 'no reload once stopping');

    await ldap.stop();
    try {
      const second = startServe(['--config', cfg], env);
      procs.push(second);
      const port2 = await listenerPort(second, 'http');
      assert.equal(await ask(port2, 'alice@example.com'), 'valid', 'alice was confirmed before the restart');
      assert.equal(await ask(port2, 'bob@example.com'), 'tempfail');
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0);
    } finally {
      await ldap.start();
    }
    return first;
  }

  test('a SIGHUP after SIGTERM is ignored: the answer file keeps what the stopping process had confirmed', async () => {
    await scenario('after', ldap.url, async (p) => {
      p.child.kill('SIGTERM');
      await p.waitForLog((l) => l.msg === 'draining and stopping');
      p.child.kill('SIGHUP');
    });
  });

  test('a reload still checking its new directory when SIGTERM comes installs nothing', async () => {
    const proxy: DelayProxy = await startDelayProxy(ldap.port, 700);
    try {
      const first = await scenario('during', proxy.url, async (p) => {
        p.child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 300)); // the reload now asks the distant directory about alice
        p.child.kill('SIGTERM');
      });
      assert.ok(first.logs.some((l) => l.msg === 'reload failed; keeping the running configuration'), 'the reload was under way and gave up');
    } finally {
      await proxy.close();
    }
  });
});
