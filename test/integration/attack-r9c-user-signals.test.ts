/**
 * SIGUSR1 and SIGUSR2 sent to `rcptgate serve` (a log rotation script written for another
 * daemon, `pkill -USR1 node`, an admin trying "reopen logs"). Node's defaults: SIGUSR1 opened the
 * V8 inspector on 127.0.0.1:9229 without authentication (anyone local, or any container of the
 * pod, could run code in rcptgate and read its bind password), SIGUSR2 killed the process at once
 * with no drain. Both are ignored now, with a log line. Real serve process and real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rcptgate serve receiving SIGUSR1 and SIGUSR2 (real slapd)', () => {
  let ldap: Slapd;
  let dir: string;
  let p: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-signals-'));
  });
  after(async () => {
    await p?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('opens no debugger, keeps running and answering, and still drains and exits 0 on SIGTERM', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    const ldapCfg = { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN };
    const listen = { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' };
    await writeFile(cfg, JSON.stringify({ listen, domains: ['example.com'], directory: { kind: 'ldap', ldap: ldapCfg } }));
    p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const http = await listenerPort(p, 'http');
    const metricsLine = await p.waitForLog((l) => l.msg === 'listening' && l.listener === 'metrics');
    const metrics = Number(String(metricsLine.address).split(':').pop());
    await p.waitForLog((l) => l.msg === 'directory is answering');
    const ask = async (address: string) => ((await (await fetch(`http://127.0.0.1:${http}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
    assert.equal(await ask('alice@example.com'), 'valid');

    p.child.kill('SIGUSR1');
    await sleep(700);
    assert.doesNotMatch(p.stderr, /Debugger listening|inspector/i, 'SIGUSR1 must not open the V8 inspector');
    const line = await p.waitForLog((l) => l.signal === 'SIGUSR1', 3_000);
    assert.match(String(line.msg), /ignored/);

    p.child.kill('SIGUSR2');
    await sleep(500);
    assert.equal(p.child.exitCode, null, `SIGUSR2 must not end the process (signal ${p.child.signalCode})`);
    assert.equal((await fetch(`http://127.0.0.1:${metrics}/healthz`)).status, 200);
    assert.equal(await ask('bob@example.com'), 'valid');
    assert.equal(await ask('nobody@example.com'), 'unknown');

    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.doesNotMatch(p.stderr, /Debugger listening/);
  });
});
