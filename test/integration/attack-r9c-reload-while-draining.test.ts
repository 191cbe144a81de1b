/**
 * A SIGHUP that arrives while `rcptgate serve` drains after SIGTERM (a config management run
 * that both reloads and restarts, a reloader reacting to the same change as the stop). The
 * reload ran: with domain settings changed it installed an engine with an empty cache, and the
 * shutdown then saved that empty cache as the answer file, so the restart, during a directory
 * outage, had forgotten every recipient it had confirmed. A stopping process now ignores SIGHUP.
 * Real slapd, real serve processes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
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

  test('is ignored: the answer file keeps what the stopping process had confirmed', async () => {
    const cfg = path.join(dir, 'rcptgate.json');
    const write = (domains: string[]) =>
      writeFile(
        cfg,
        JSON.stringify({
          listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
          domains,
          directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
          cache: { persistPath: path.join(dir, 'answers') },
          server: { drainTimeout: `${DRAIN_MS}ms` },
        }),
      );
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    await write(['example.com']);
    const first = startServe(['--config', cfg], env);
    procs.push(first);
    const port = await listenerPort(first, 'http');
    const ask = async (p: number, address: string) => ((await (await fetch(`http://127.0.0.1:${p}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
    assert.equal(await ask(port, 'alice@example.com'), 'valid');

    // A request begun and not finished keeps the drain going for its full time.
    const slow = net.connect({ port, host: '127.0.0.1' });
    slow.on('error', () => undefined);
    await new Promise((r) => slow.once('connect', r));
    slow.write('POST /v1/recipients:check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"addr');

    await write(['example.com', 'example.org']); // a domain change: a reload would empty the cache
    first.child.kill('SIGTERM');
    await first.waitForLog((l) => l.msg === 'draining and stopping');
    first.child.kill('SIGHUP');
    assert.equal(await first.exited, 0);
    slow.destroy();
    assert.ok(!first.logs.some((l) => String(l.msg).startsWith('configuration reloaded')), 'no reload once stopping');

    // The restart comes during a directory outage.
    await ldap.stop();
    const second = startServe(['--config', cfg], env);
    procs.push(second);
    const port2 = await listenerPort(second, 'http');
    assert.equal(await ask(port2, 'alice@example.com'), 'valid', 'alice was confirmed before the restart');
    assert.equal(await ask(port2, 'bob@example.com'), 'tempfail');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });
});
