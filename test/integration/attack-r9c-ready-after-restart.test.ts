/**
 * Readiness of a restart during a directory outage with `cache.persistPath`. The restarted
 * process loads the answers it had confirmed and serves them (fresh, then stale), exactly as
 * before the restart; a process that had not restarted stays ready through the outage (taking
 * replicas out of the Service turns even their cached answers into connection failures). The
 * restarted one said 503 waiting_for_directory for the whole outage: in Kubernetes a container
 * restart (OOM, liveness) took the pod out of the Service, and with every replica restarted MTAs
 * got connection failures for recipients rcptgate knew. Answers loaded from the file now count
 * as the directory having answered. Real slapd, real serve processes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('readiness after a restart during a directory outage (real slapd)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-ready-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serve = async (cfg: string): Promise<{ p: ServeProcess; http: number; metrics: number }> => {
    const p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    procs.push(p);
    const http = await listenerPort(p, 'http');
    const line = await p.waitForLog((l) => l.msg === 'listening' && l.listener === 'metrics');
    return { p, http, metrics: Number(String(line.address).split(':').pop()) };
  };
  /** A config file `name` with HTTP and metrics listeners and the answer file `answers`; its path. */
  const configWith = async (name: string, answers: string): Promise<string> => {
    const cfg = path.join(dir, name);
    const config = {
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
      cache: { persistPath: path.join(dir, answers) },
    };
    await writeFile(cfg, JSON.stringify(config));
    return cfg;
  };
  const readyz = async (port: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: res.status, body: (await res.json()) as { reasonCode?: string } };
  };
  const verdict = async (port: number, address: string) => ((await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;

  test('is ready (degraded, directory_down) when it loaded confirmed answers, as it was before the restart', async () => {
    const cfg = await configWith('rcptgate.json', 'answers');
    const first = await serve(cfg);
    assert.equal(await verdict(first.http, 'alice@example.com'), 'valid');
    await ldap.stop();
    // Before the restart: the outage (seen by a lookup) leaves it ready, degraded.
    assert.equal(await verdict(first.http, 'bob@example.com'), 'tempfail');
    let r = await readyz(first.metrics);
    assert.deepEqual([r.status, r.body.reasonCode], [200, 'directory_down'], 'ready through the outage before the restart');
    first.p.child.kill('SIGTERM');
    assert.equal(await first.p.exited, 0);

    const second = await serve(cfg);
    assert.equal(await verdict(second.http, 'alice@example.com'), 'valid', 'the confirmed answer is served after the restart');
    assert.equal(await verdict(second.http, 'bob@example.com'), 'tempfail');
    r = await readyz(second.metrics);
    assert.deepEqual([r.status, r.body.reasonCode], [200, 'directory_down'], `after the restart: ${JSON.stringify(r.body)}`);
    second.p.child.kill('SIGTERM');
    assert.equal(await second.p.exited, 0);
    await ldap.start();
  });

  test('a restart that loaded no answers still waits for the directory', async () => {
    const cfg = await configWith('fresh.json', 'no-answers-yet');
    await ldap.stop();
    try {
      const s = await serve(cfg);
      const r = await readyz(s.metrics);
      assert.deepEqual([r.status, r.body.reasonCode], [503, 'waiting_for_directory']);
      s.p.child.kill('SIGTERM');
      assert.equal(await s.p.exited, 0);
    } finally {
      await ldap.start();
    }
  });
});
