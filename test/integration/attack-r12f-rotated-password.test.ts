/**
 * The bind password rotated under a running service: the directory's account gets a new
 * password and the mounted password file is rewritten (a Kubernetes Secret from
 * `secrets.existingSecret` updated by an operator or a secrets manager: the kubelet rewrites the
 * file, nobody sends SIGHUP, and the chart cannot roll the pods for a Secret it does not own).
 * The password was read once: the connections bound before went on working, but the first
 * reconnect (a directory restart, a failover, an idle connection dropped) was refused, and every
 * uncached recipient was deferred until someone restarted rcptgate or sent SIGHUP (measured: 30 s
 * of tempfail after a slapd restart, then valid at once after a SIGHUP). The service now notices
 * the file change and binds with the new password, in either order of the two changes.
 * Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** Generous: the file is looked at every 10 s, and the machine is loaded. */
const WITHIN_MS = 60_000;

describe('a bind password rotated while the service runs (real slapd, real serve)', { timeout: 300_000 }, () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;
  let passwordFile: string;
  let verdict: (address: string) => Promise<string>;

  const setPassword = (password: string) => ldap.modify(`dn: ${ldap.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: ${password}\n`);
  /** Waits until alice is valid again, without a SIGHUP; the verdicts seen meanwhile. */
  const validAgain = async (): Promise<string[]> => {
    const seen: string[] = [];
    const end = Date.now() + WITHIN_MS;
    for (;;) {
      const v = await verdict('alice@example.com');
      seen.push(v);
      if (v === 'valid') return seen;
      assert.ok(Date.now() < end, `still ${v} ${WITHIN_MS / 1000} s after the rotation (seen: ${seen.join(' ')})`);
      await sleep(1_000);
    }
  };

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12f-rotate-'));
    passwordFile = path.join(dir, 'ldap-password');
    await writeFile(passwordFile, `${ldap.servicePassword}\n`, { mode: 0o600 });
    const cfg = path.join(dir, 'rcptgate.yaml');
    await writeFile(
      cfg,
      [
        'listen: { http: "127.0.0.1:0", socketmap: null, policy: null, milter: null, metrics: null }',
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        `  ldap: { urls: ["${ldap.url}"], baseDN: "${ldap.baseDN}", bindDN: "${ldap.serviceDN}", bindPasswordFile: "${passwordFile}", timeout: 2s }`,
        // Every lookup asks the directory: what is tested is the bind, not the cache.
        'cache: { maxEntries: 0 }',
      ].join('\n') + '\n',
    );
    serve = startServe(['--config', cfg]);
    const port = await listenerPort(serve, 'http');
    verdict = async (address) => ((await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
    assert.equal(await verdict('alice@example.com'), 'valid');
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('directory first, then the file: after a directory restart, lookups bind with the new password', async () => {
    await setPassword('rotated-first-directory-0001');
    await writeFile(passwordFile, 'rotated-first-directory-0001\n');
    await ldap.stop();
    await ldap.start();
    await validAgain();
    assert.equal(await verdict('nobody@example.com'), 'unknown');
  });

  test('the file first, then the directory: the old password serves meanwhile, the new one once the directory has it', async () => {
    await writeFile(passwordFile, 'rotated-first-file-0002\n');
    // The directory still has the old password: the running connections go on answering.
    await sleep(12_000);
    assert.equal(await verdict('alice@example.com'), 'valid');
    await setPassword('rotated-first-file-0002');
    await ldap.stop();
    await ldap.start();
    await validAgain();
    assert.equal(serve!.logs.filter((l) => l.level === 60).length, 0, 'no fatal log line');
  });
});
