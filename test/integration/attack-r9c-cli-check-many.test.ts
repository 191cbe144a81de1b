/**
 * `rcptgate check` with a long list of addresses (`xargs rcptgate check < list` hands it about
 * 6,000 per run): it asked every one at once, they queued in the directory client past
 * `directory.ldap.timeout`, and thousands came back tempfail (exit 75) from a healthy directory
 * 100 ms away. The CLI now asks at most as many at once as the directory's connections carry,
 * and never more than `directory.ldap.maxInFlight` (past it lookups are refused at once).
 * Real slapd behind the delay proxy, the real CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 8_000;
const UNKNOWN = 200;
const DELAY_MS = 100;

function check(config: string, addresses: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', '--config', config, ...addresses], { cwd: REPO_ROOT, env, maxBuffer: 64 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
    });
  });
}

describe('rcptgate check with thousands of addresses (real slapd 100 ms away)', () => {
  let ldap: Slapd;
  let proxy: DelayProxy;
  let dir: string;
  let config: string;
  let small: string;

  before(async () => {
    ldap = await startSlapd({ generatedUsers: USERS });
    proxy = await startDelayProxy(ldap.port, DELAY_MS);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-check-'));
    const password = path.join(dir, 'password');
    await writeFile(password, ldap.servicePassword, { mode: 0o600 });
    config = path.join(dir, 'rcptgate.yaml');
    const ldapCfg = { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: password };
    await writeFile(config, JSON.stringify({ domains: ['example.com'], directory: { kind: 'ldap', ldap: ldapCfg } }));
    small = path.join(dir, 'small-inflight.yaml');
    await writeFile(small, JSON.stringify({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { ...ldapCfg, maxInFlight: 100 } } }));
  });
  after(async () => {
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('answers every address from the directory: no tempfail of its own making', async () => {
    const valid = Array.from({ length: USERS }, (_, i) => `user${i + 1}@example.com`);
    const unknown = Array.from({ length: UNKNOWN }, (_, i) => `nobody${i}@example.com`);
    const addresses = [...valid, ...unknown];
    const r = await check(config, addresses);
    const lines = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    const counts: Record<string, number> = {};
    for (const l of lines) counts[l[1]!] = (counts[l[1]!] ?? 0) + 1;
    assert.deepEqual(counts, { valid: USERS, unknown: UNKNOWN }, `verdicts (stderr: ${r.stderr.slice(0, 400)})`);
    assert.deepEqual(lines.map((l) => l[0]), addresses, 'one line per address, in the order given');
    assert.equal(r.code, 1, 'exit 1: some unknown, none tempfail');
  });

  test('stays within directory.ldap.maxInFlight, past which lookups are refused at once', async () => {
    const addresses = Array.from({ length: 2_000 }, (_, i) => `user${i + 1}@example.com`);
    const r = await check(small, addresses);
    const verdicts = r.stdout.trim().split('\n').map((l) => l.split('\t')[1]);
    assert.deepEqual(verdicts.filter((v) => v !== 'valid'), [], `every address answered (stderr: ${r.stderr.slice(0, 400)})`);
    assert.equal(verdicts.length, addresses.length);
    assert.equal(r.code, 0);
  });
});
