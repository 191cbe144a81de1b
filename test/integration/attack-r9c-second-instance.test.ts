/**
 * A second `rcptgate serve` started beside the running one, on its ports and with its
 * `cache.persistPath` (a staging copy of the config, a unit started twice). It cannot bind, and
 * on its way out it saved its answer cache over the running instance's answer file: what it
 * had loaded, or nothing at all when its config names another directory (the file is then
 * foreign to it). After a crash of the running instance during a directory outage, the restart
 * found an empty file and deferred every recipient it had confirmed. A start that failed now
 * saves nothing; it also exits 78 as the README says (it exited 1). Real slapd, real serve.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a second instance on the ports and answer file of a running one (real slapd)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-second-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('exits 78 without touching the answer file, so a restart during an outage still knows the confirmed recipients', async () => {
    const port = await freePort();
    const answers = path.join(dir, 'answers');
    const config = async (name: string, baseDN: string): Promise<string> => {
      const file = path.join(dir, name);
      const listen = { http: `127.0.0.1:${port}`, socketmap: null, policy: null, milter: null, metrics: null };
      const ldapCfg = { urls: [ldap.url], baseDN, bindDN: ldap.serviceDN, timeout: '1s' };
      await writeFile(file, JSON.stringify({ listen, domains: ['example.com'], directory: { kind: 'ldap', ldap: ldapCfg }, cache: { persistPath: answers } }));
      return file;
    };
    const running = await config('running.json', ldap.baseDN);
    const staging = await config('staging.json', `ou=People,${ldap.baseDN}`);
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    const serve = (file: string): ServeProcess => {
      const p = startServe(['--config', file], env);
      procs.push(p);
      return p;
    };
    const ask = async (address: string) => (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string; source: string };

    // The running instance confirms alice and saves its answers at shutdown, then runs again.
    const first = serve(running);
    await listenerPort(first, 'http');
    assert.equal((await ask('alice@example.com')).verdict, 'valid');
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    const again = serve(running);
    await listenerPort(again, 'http');

    const second = serve(staging);
    assert.equal(await second.exited, 78, `a listener that cannot bind is a configuration problem (exit 78); logs: ${JSON.stringify(second.logs.slice(-2))}`);
    assert.equal(second.logs.find((l) => l.level === 60)?.key, 'listen.http');

    // The running instance crashes (no save of its own) while the directory is down.
    await again.kill();
    await ldap.stop();
    const restarted = serve(running);
    await listenerPort(restarted, 'http');
    const alice = await ask('alice@example.com');
    assert.equal(alice.verdict, 'valid', `alice was confirmed before the restart: ${JSON.stringify(alice)}`);
    assert.equal((await ask('bob@example.com')).verdict, 'tempfail', 'never confirmed: deferred while the directory is down');
    restarted.child.kill('SIGTERM');
    assert.equal(await restarted.exited, 0);
  });
});
