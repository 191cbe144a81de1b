/**
 * `rcptgate check` as an operator's smoke test after a rollout or a password rotation, against a
 * directory that is down, silent, or refusing the bind account. Down and silent are passing
 * failures: tempfail, exit 75, worth a retry. A refused bind account (a wrong password in the
 * secret, a bindDN mistyped) is not: the log line says "a configuration error", yet check exited
 * 75, the status a retry loop retries for ever (and each retry is one more refused bind towards an
 * account lockout). It now exits 78, the status of a configuration problem, with one line naming
 * what to fix; the verdicts stay tempfail (never unknown). Real slapd, the real CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

describe('rcptgate check against a directory in trouble (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  let silent: net.Server;
  let silentUrl: string;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-check-'));
    // Accepts and never answers: a directory host whose slapd hangs.
    silent = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentUrl = `ldap://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    silent?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const check = async (urls: string[], password: string): Promise<Run> => {
    const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, JSON.stringify({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls, baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
    }));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const started = Date.now();
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', '--config', file, 'alice@example.com', 'nobody-r13l@example.com'],
        { cwd: REPO_ROOT, env: { ...env, RCPTGATE_LDAP_BIND_PASSWORD: password }, timeout: 120_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr, ms: Date.now() - started }));
    });
  };

  const verdicts = (r: Run) => r.stdout.trim().split('\n').map((l) => l.split('\t')[1]);

  test('the directory answering: its verdicts, exit 1 for the unknown', async () => {
    const r = await check([ldap.url], ldap.servicePassword);
    assert.deepEqual(verdicts(r), ['valid', 'unknown'], r.stderr);
    assert.equal(r.code, 1);
  });

  test('a refused bind account: tempfail verdicts, exit 78 and a line naming what to fix', async () => {
    const r = await check([ldap.url], 'not-the-password');
    assert.deepEqual(verdicts(r), ['tempfail', 'tempfail'], r.stderr);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /^rcptgate: .*refused the bind account.*directory\.ldap\.bindDN.*password/m);
  });

  test('a directory down (connection refused): tempfail, exit 75', async () => {
    const r = await check([await closedPortUrl()], ldap.servicePassword);
    assert.deepEqual(verdicts(r), ['tempfail', 'tempfail'], r.stderr);
    assert.equal(r.code, 75, r.stderr);
  });

  test('a directory that accepts and never answers: tempfail, exit 75, within the timeout and its retries', async () => {
    const r = await check([silentUrl], ldap.servicePassword);
    assert.deepEqual(verdicts(r), ['tempfail', 'tempfail'], r.stderr);
    assert.equal(r.code, 75, r.stderr);
    assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
  });
});
