/**
 * Two instances given the same data file under two names: one the file, the other a symbolic
 * link to it (the README follows links: the write goes beside the target). The lock lived next to
 * the name as configured (`FILE.lock`), so each took its own lock and both ran, each saving its
 * answers over the other's file, which the lock exists to prevent. Real slapd, real serve
 * processes; the file once existing and once not written yet (a link to where it will be).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('one data file named through a symbolic link by a second instance (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12d-lock-link-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serve = async (name: string, answers: string): Promise<ServeProcess> => {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(
      file,
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        cache: { persistPath: answers },
      }),
    );
    const p = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    procs.push(p);
    return p;
  };
  const exitCode = (p: ServeProcess) => Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000).unref())]);
  const fatal = (p: ServeProcess) => String((p.logs.find((l) => l.level === 60)?.err as { message?: string } | undefined)?.message);

  for (const exists of [true, false]) {
    test(`the second instance is refused (the file ${exists ? 'exists' : 'is not written yet'})`, async () => {
      const real = path.join(dir, `answers-${exists}`);
      const link = path.join(dir, `link-${exists}`);
      if (exists) await writeFile(real, '');
      await symlink(real, link);
      const first = await serve(`first-${exists}`, real);
      await listenerPort(first, 'http');
      await new Promise((r) => setTimeout(r, 500)); // its lock is checked 200 ms after it is bound
      const second = await serve(`second-${exists}`, link);
      assert.equal(await exitCode(second), 78, 'both instances ran on one file');
      assert.match(fatal(second), /in use by another running instance/);
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
    });
  }
});
