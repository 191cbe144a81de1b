/**
 * The directory stops answering; the operator points directory.ldap.urls at another server and
 * reloads (SIGHUP), then restarts the service within the half minute the replaced directory is
 * kept for the lookups still in flight on it. Those lookups hang on the stopped server: at the
 * end of SIGTERM's drain they must be answered tempfail like those on the running directory,
 * never cut (Postfix reads a dropped socketmap connection as a lookup error). Before, only the
 * running directory was closed before the drain ended: the lookups on the replaced one were cut.
 * Real slapd twice (the first SIGSTOPped), the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('SIGTERM soon after a reload away from a stopped directory (real slapd x2, real CLI)', () => {
  let stopped: Slapd;
  let other: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    [stopped, other] = await Promise.all([startSlapd({ generatedUsers: 20 }), startSlapd({ generatedUsers: 20 })]);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-reloadstop-'));
  });
  after(async () => {
    await serve?.kill();
    stopped?.resume();
    await Promise.all([stopped?.close(), other?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('lookups hanging on the replaced directory are answered tempfail at the end of the drain, exit 0', async () => {
    const file = path.join(dir, 'rcptgate.yaml');
    const write = (url: string) => writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [url], baseDN: stopped.baseDN, bindDN: stopped.serviceDN, timeout: '30s' } },
      server: { drainTimeout: '2s' },
      log: { level: 'info' },
    }));
    await write(stopped.url);
    serve = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: stopped.servicePassword });
    const client = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);

    await stopped.pause();
    const hanging = Array.from({ length: 5 }, (_, i) => client.query('recipients', `user${i + 1}@example.com`).catch((e: Error) => `cut: ${e.message}`));
    await new Promise((r) => setTimeout(r, 300));
    await write(other.url);
    serve.child.kill('SIGHUP');
    await serve.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded'), 30_000);
    // The new directory answers.
    const fresh = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    assert.match(await fresh.query('recipients', 'bob@example.com'), /^OK /);
    fresh.close();

    const sent = Date.now();
    serve.child.kill('SIGTERM');
    const replies = await Promise.all(hanging);
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000))]);
    const took = Date.now() - sent;
    client.close();
    for (const r of replies) assert.match(r, /^TEMP /, `socketmap replies: ${replies.join(' | ')}`);
    assert.equal(code, 0, `exit; logs: ${JSON.stringify(serve.logs.filter((l) => (l.level as number) >= 40))}`);
    assert.ok(took < 12_000, `exited ${took} ms after SIGTERM`);
    stopped.resume();
  });
});
