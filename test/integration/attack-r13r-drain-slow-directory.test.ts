/**
 * SIGTERM with lookups in flight on a directory that is slow but answers (a far or loaded server:
 * 2.2 s a search here), within the drain time (2.5 s). They must get their real answers: the
 * directory is closed just before the drain's end so that lookups hanging on a server that
 * stopped answering get tempfail before the cut, but closed a second early (the last quarter of
 * the drain, up to 1 s) it deferred answers due in that second: users who exist were told to
 * try again. Real slapd behind a proxy that delays each direction 1.1 s, the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('SIGTERM with lookups on a slow directory that answers within the drain (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let proxy: DelayProxy;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd({ generatedUsers: 20 });
    proxy = await startDelayProxy(ldap.port, 1_100);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-slowdrain-'));
  });
  after(async () => {
    await serve?.kill();
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the lookups in flight get their answers (OK), not tempfail; exit 0', async () => {
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
      server: { drainTimeout: '2500ms' },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const client = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    // Connected and bound: the next searches take one round trip (2.2 s).
    assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);
    const sentAt = Date.now();
    const pending = Array.from({ length: 5 }, (_, i) =>
      client.query('recipients', `user${i + 1}@example.com`).then((r) => `${r} after ${Date.now() - sentAt} ms`, (e: Error) => `cut: ${e.message}`));
    await new Promise((r) => setTimeout(r, 100));
    serve.child.kill('SIGTERM');
    const replies = await Promise.all(pending);
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000))]);
    client.close();
    for (const r of replies) assert.match(r, /^OK /, `replies: ${replies.join(' | ')}`);
    assert.equal(code, 0);
  });
});
