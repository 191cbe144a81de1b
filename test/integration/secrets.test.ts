/**
 * Secrets never leave the process: the real CLI runs with log.level trace against a real slapd,
 * is driven through HTTP (lookups, admin calls with no, wrong and right token), socketmap, a
 * SIGHUP reload and a directory outage; a second instance fails to bind with a wrong password.
 * Neither the bind password nor the admin token appears in stdout or stderr. `config check`
 * prints no secret either, valid config or not.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { REPO_ROOT, listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

const TOKEN = `admin-token-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-password-${randomBytes(12).toString('hex')}`;

/** Everything the process wrote, stdout and stderr. */
function capture(p: ServeProcess): () => string {
  let text = '';
  p.child.stdout!.on('data', (d: Buffer | string) => (text += d.toString()));
  p.child.stderr!.on('data', (d: Buffer | string) => (text += d.toString()));
  return () => text;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function leaks(output: string, secrets: string[]): string[] {
  return secrets.filter((s) => output.includes(s));
}

describe('secrets never appear in logs or config check output', { timeout: 120_000 }, () => {
  let ldap: Slapd;
  let dir: string;
  let configFile: string;
  let wrongConfigFile: string;
  const processes: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-secrets-'));
    const passwordFile = path.join(dir, 'bind-password');
    const wrongPasswordFile = path.join(dir, 'wrong-password');
    const tokenFile = path.join(dir, 'admin-token');
    await writeFile(passwordFile, `${ldap.servicePassword}\n`, { mode: 0o600 });
    await writeFile(wrongPasswordFile, `${WRONG_PASSWORD}\n`, { mode: 0o600 });
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const config = (bindPasswordFile: string) => ({
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile, timeout: '1s' } },
      admin: { tokenFile },
      log: { level: 'trace' },
    });
    configFile = path.join(dir, 'rcptgate.yaml');
    wrongConfigFile = path.join(dir, 'wrong.yaml');
    await writeFile(configFile, stringify(config(passwordFile)));
    await writeFile(wrongConfigFile, stringify(config(wrongPasswordFile)));
  });

  after(async () => {
    for (const p of processes) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the serving process at trace level never logs the bind password or the admin token', async () => {
    const p = startServe(['--config', configFile], { RCPTGATE_CONFIG: '' });
    processes.push(p);
    const output = capture(p);
    const http = `http://127.0.0.1:${await listenerPort(p, 'http')}`;
    const smPort = await listenerPort(p, 'socketmap');

    assert.equal(((await (await fetch(`${http}/v1/recipients/alice%40example.com`)).json()) as { verdict: string }).verdict, 'valid');
    const explainAuth = { headers: { authorization: `Bearer ${TOKEN}` } };
    assert.equal(((await (await fetch(`${http}/v1/recipients/nobody%40example.com?explain=1`, explainAuth)).json()) as { verdict: string }).verdict, 'unknown');
    assert.equal((await fetch(`${http}/v1/cache`, { method: 'DELETE' })).status, 401);
    assert.equal((await fetch(`${http}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}x` } })).status, 403);
    assert.equal((await fetch(`${http}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status, 204);
    assert.equal((await fetch(`${http}/v1/cache/alice%40example.com`, { method: 'DELETE', headers: { authorization: `bearer ${TOKEN}` } })).status, 204);
    const sm = await SocketmapClient.connect(smPort);
    try {
      assert.equal(await sm.query('recipients', 'bob@example.com'), 'OK bob@example.com');
      p.child.kill('SIGHUP');
      await p.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('reloaded'));
      // Directory outage: error paths log too.
      await ldap.stop();
      assert.match(await sm.query('recipients', 'never-seen@example.com'), /^TEMP /);
      await ldap.start();
    } finally {
      sm.close();
    }
    await fetch(`${http}/readyz`);
    await fetch(`${http}/metrics`);
    await new Promise((r) => setTimeout(r, 300)); // let pino flush
    const text = output();
    // rcptgate has no trace-only events; debug lines (per lookup, per connection) prove the verbose level took effect.
    assert.ok(p.logs.some((l) => l.level === 20 && l.msg === 'lookup'), 'per-lookup debug lines were written at log.level trace');
    assert.ok(text.length > 1_000, 'the process logged something');
    assert.deepEqual(leaks(text, [ldap.servicePassword, TOKEN]), []);
  });

  test('a failing bind logs the failure but not the wrong password', async () => {
    const p = startServe(['--config', wrongConfigFile], { RCPTGATE_CONFIG: '' });
    processes.push(p);
    const output = capture(p);
    const http = `http://127.0.0.1:${await listenerPort(p, 'http')}`;
    const r = await fetch(`${http}/v1/recipients/alice%40example.com`);
    assert.equal(r.status, 503, 'lookups defer while the bind fails');
    await p.waitForLog((l) => JSON.stringify(l).toLowerCase().includes('bind') || JSON.stringify(l).includes('DIRECTORY_AUTH'));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(leaks(output(), [WRONG_PASSWORD, TOKEN]), []);
  });

  test('config check prints no secret, from files or from the environment, valid config or not', async () => {
    const envSecret = `env-password-${randomBytes(8).toString('hex')}`;
    const envToken = `env-token-${randomBytes(8).toString('hex')}`;
    const env = { RCPTGATE_CONFIG: '', RCPTGATE_LDAP_BIND_PASSWORD: envSecret, RCPTGATE_ADMIN_TOKEN: envToken };
    const ok = await runCli(['config', 'check', '--config', configFile], env);
    assert.equal(ok.code, 0, ok.output);
    assert.match(ok.output, /bindDN/);
    assert.deepEqual(leaks(ok.output, [ldap.servicePassword, TOKEN, envSecret, envToken]), []);

    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, stringify({ directory: { kind: 'ldap', ldap: { urls: ['nope'], bindDN: 'cn=x', bindPasswordFile: path.join(dir, 'bind-password') } }, admin: { tokenFile: path.join(dir, 'admin-token') }, bogus: 1 }));
    const failed = await runCli(['config', 'check', '--config', bad], env);
    assert.equal(failed.code, 78, failed.output);
    assert.deepEqual(leaks(failed.output, [ldap.servicePassword, TOKEN, envSecret, envToken]), []);
  });

  test('a secret set where its file path belongs is not echoed by config check or serve', async () => {
    // RCPTGATE_ADMIN_TOKEN_FILE=<the token> instead of RCPTGATE_ADMIN_TOKEN: "cannot read ... file
    // <value>" and the system error quoting it printed the secret.
    const pasted = `pasted-${randomBytes(12).toString('hex')}`;
    const env = { RCPTGATE_CONFIG: '', RCPTGATE_ADMIN_TOKEN_FILE: pasted };
    const check = await runCli(['config', 'check', '--config', configFile], env);
    assert.equal(check.code, 78, check.output);
    assert.match(check.output, /admin\.tokenFile.*cannot read the admin token file \(not shown: a value without "\/" may be the secret itself; give the file's path\): ENOENT/);
    assert.deepEqual(leaks(check.output, [pasted]), []);
    const serve = await runCli(['serve', '--config', configFile], env);
    assert.equal(serve.code, 78, serve.output);
    assert.deepEqual(leaks(serve.output, [pasted]), []);
    // A path is still named: it is what the operator needs to see.
    const missing = path.join(dir, 'no-such-token');
    const named = await runCli(['config', 'check', '--config', configFile], { ...env, RCPTGATE_ADMIN_TOKEN_FILE: missing });
    assert.equal(named.code, 78, named.output);
    assert.ok(named.output.includes(missing), named.output);
  });
});
