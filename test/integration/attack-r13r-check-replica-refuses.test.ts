/**
 * `rcptgate check` exits 78 (a configuration problem: supervisors and retry loops give up) when
 * the directory refused the bind account. With two servers, one refusing the account (a replica
 * the new password has not reached yet, or one where it is locked out for a while) and the other
 * accepting it, the account is demonstrably right: a lookup that then tempfails for another
 * reason (a search hanging on the good server) is a passing failure, exit 75. Before, check
 * exited 78 and told the operator to fix a bindDN and password that work. Real slapd twice, the
 * real CLI; a proxy holds back the answers to one user's search on the accepting server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { startStallProxy, type StallProxy } from '../helpers/r12b-stall-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

interface Run { code: number | null; stdout: string; stderr: string }

describe('rcptgate check: one server refuses the bind account, the other accepts it (real slapd x2, real CLI)', () => {
  let good: Slapd;
  let lagging: Slapd;
  let proxy: StallProxy;
  let dir: string;

  before(async () => {
    [good, lagging] = await Promise.all([startSlapd(), startSlapd()]);
    // The replica still has the old password: the service's password is refused there.
    await lagging.modify(`dn: ${lagging.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: the-old-password\n`);
    // bob's search hangs on the good server (its entry and result are held back).
    proxy = await startStallProxy(good.port, (msg) => msg.toString('latin1').includes('uid=bob,'));
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-check-'));
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([good?.close(), lagging?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const check = async (urls: string[], addresses: string[]): Promise<Run> => {
    const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, JSON.stringify({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls, baseDN: good.baseDN, bindDN: good.serviceDN, timeout: '2s' } },
    }));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', '--config', file, ...addresses],
        { cwd: REPO_ROOT, env: { ...env, RCPTGATE_LDAP_BIND_PASSWORD: good.servicePassword }, timeout: 120_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }));
    });
  };
  const verdict = (r: Run, address: string) => r.stdout.split('\n').find((l) => l.startsWith(`${address}\t`))?.split('\t')[1];

  test('the lagging server first, the good one answering: verdicts, exit 1 for the unknown', async () => {
    const r = await check([lagging.url, proxy.url], ['alice@example.com', 'nobody-r13r@example.com']);
    assert.equal(verdict(r, 'alice@example.com'), 'valid', r.stderr);
    assert.equal(verdict(r, 'nobody-r13r@example.com'), 'unknown', r.stderr);
    assert.equal(r.code, 1, r.stderr);
  });

  test('the good server accepted the account but a search hung there: tempfail, exit 75, no advice to change the password', async () => {
    const r = await check([lagging.url, proxy.url], ['bob@example.com']);
    assert.equal(verdict(r, 'bob@example.com'), 'tempfail', r.stdout + r.stderr);
    assert.ok(proxy.stalled > 0, 'the search reached the accepting server');
    assert.doesNotMatch(r.stderr, /^rcptgate: .*refused the bind account/m);
    assert.equal(r.code, 75, r.stderr);
  });

  test('only the lagging server (every server refuses): still exit 78 naming the bind account', async () => {
    const r = await check([lagging.url], ['bob@example.com']);
    assert.equal(verdict(r, 'bob@example.com'), 'tempfail', r.stderr);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /refused the bind account.*directory\.ldap\.bindDN/);
  });
});
