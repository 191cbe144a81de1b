/**
 * `sync.incrementalInterval: 1ms` (a unit forgotten, or "1" meant as minutes) is accepted: with
 * sync on, incremental syncs run back to back against the directory (each one reads its clock
 * and lists the changes), for as long as the service runs. The same floor as sync.interval and
 * cache.persistInterval (at least 1s) is wanted. Real slapd, the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('sync.incrementalInterval below 1s (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;
  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11e-inc-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('serve refuses sync.incrementalInterval: 1ms with exit 78 naming the key', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    await writeFile(cfg, JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
      sync: { enabled: true, incrementalInterval: '1ms', snapshotPath: path.join(dir, 'snapshot') },
    }));
    serve = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const outcome = await Promise.race([serve.exited.then((c) => `exit ${c}`), serve.waitForLog((l) => l.msg === 'listening', 30_000).then(() => 'listening')]);
    if (outcome === 'listening') {
      const port = await listenerPort(serve, 'http');
      const count = async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(/rcptgate_sync_duration_seconds_count\{kind="incremental"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      await new Promise((r) => setTimeout(r, 2000));
      const before = await count();
      await new Promise((r) => setTimeout(r, 3000));
      const after = await count();
      assert.fail(`started; ${after - before} incremental syncs against slapd in 3 s `);
    }
    assert.equal(outcome, 'exit 78', serve.stderr);
    assert.match(serve.stderr + JSON.stringify(serve.logs), /sync\.incrementalInterval.*at least 1s/);
  });
});
