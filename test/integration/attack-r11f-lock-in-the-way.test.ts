/**
 * Something left at a data file's lock path (FILE.lock) by a careless admin or another local
 * user: a directory cannot be taken over, and the service must say so and what to do, not that
 * "another instance is starting"; a symlink to some other file is replaced, never followed (the
 * file it points to stays as it was). Real slapd, real serve processes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('things in the way of a data file lock (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-lock-way-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serve = async (answers: string): Promise<ServeProcess> => {
    const file = path.join(dir, `${path.basename(answers)}.yaml`);
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

  test('a directory at the lock path: exit 78 naming it and why, not another instance', async () => {
    const answers = path.join(dir, 'answers-dir');
    await mkdir(`${answers}.lock`);
    const p = await serve(answers);
    assert.equal(await exitCode(p), 78);
    assert.match(fatal(p), new RegExp(`cache\\.persistPath: ${answers}\\.lock is in the way of the lock and cannot be removed \\(EISDIR\\); remove it`));
    assert.equal(p.logs.filter((l) => String(l.msg).includes('stale lock')).length, 0, 'no stale lock was removed');
  });

  test('a symlink at the lock path to another file: replaced, the file untouched, the service runs', async () => {
    const answers = path.join(dir, 'answers-link');
    const precious = path.join(dir, 'precious.txt');
    await writeFile(precious, 'keep me\n');
    await symlink(precious, `${answers}.lock`);
    const p = await serve(answers);
    const port = await listenerPort(p, 'http');
    const r = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/alice@example.com`)).json()) as { verdict: string };
    assert.equal(r.verdict, 'valid');
    assert.equal(await readFile(precious, 'utf8'), 'keep me\n');
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.equal(await readFile(precious, 'utf8'), 'keep me\n');
  });
});
