/**
 * A SIGHUP during a directory outage that changes how the directory is reached, not what it
 * holds: the operator raises directory.ldap.timeout, or adds a replica's URL, to get through the
 * incident. The reload counted any change under `directory` as another directory and flushed the
 * answer cache: every recipient it was serving (fresh, or stale for cache.staleIfError) went from
 * `valid` to `tempfail` for the rest of the outage. Valid answers are now kept unless what makes
 * an entry a recipient changed (base DN, scope, filter, preset, bind DN) or the domains; a new
 * URL list drops the cached "no such entry" answers (another server may know the user), and the
 * new directory is still checked before it is installed. Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a reload that changes how the directory is reached (real slapd, real serve)', () => {
  let ldap: Slapd;
  let empty: Slapd;
  let dir: string;
  const procs: ServeProcess[] = [];

  before(async () => {
    [ldap, empty] = await Promise.all([startSlapd(), startSlapd({ fixture: false })]);
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r10b-reload-cache-'));
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    await empty?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cfg = () => path.join(dir, 'rcptgate.yaml');
  const writeConfig = (ldapSettings: Record<string, unknown>) =>
    writeFile(
      cfg(),
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s', ...ldapSettings } },
      }),
    );
  const serve = async (): Promise<{ p: ServeProcess; port: number }> => {
    const p = startServe(['--config', cfg()], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    procs.push(p);
    return { p, port: await listenerPort(p, 'http') };
  };
  const verdict = async (port: number, address: string) => {
    const body = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string; source: string };
    return `${body.verdict}/${body.source}`;
  };
  /** SIGHUP; the reload's outcome line, with the reason when it failed. */
  const reload = async (p: ServeProcess): Promise<string> => {
    const seen = p.logs.length;
    p.child.kill('SIGHUP');
    const line = await p.waitForLog((l) => p.logs.indexOf(l) >= seen && typeof l.msg === 'string' && /^(configuration reloaded|reload failed)/.test(l.msg));
    return `${String(line.msg)}${line.err ? `: ${(line.err as { message: string }).message}` : ''}`;
  };

  test('during an outage, a raised timeout and an added URL keep serving the answers cached before it', async () => {
    await writeConfig({});
    const { p, port } = await serve();
    assert.deepEqual([await verdict(port, 'alice@example.com'), await verdict(port, 'bob@example.com')], ['valid/directory', 'valid/directory']);
    await ldap.stop();
    try {
      assert.equal(await verdict(port, 'alice@example.com'), 'valid/cache');
      await writeConfig({ urls: [ldap.url, await closedPortUrl()], timeout: '5s' });
      assert.match(await reload(p), /^configuration reloaded/);
      assert.deepEqual([await verdict(port, 'alice@example.com'), await verdict(port, 'bob@example.com')], ['valid/cache', 'valid/cache'], 'the reload flushed the answers the outage was served from');
      assert.equal(await verdict(port, 'carol.mixed@example.com'), 'tempfail/directory');
    } finally {
      await ldap.start();
    }
  });

  test('a new URL asks again about addresses cached unknown, and a server that finds none of the valid ones is refused', async () => {
    await writeConfig({});
    const { p, port } = await serve();
    assert.equal(await verdict(port, 'alice@example.com'), 'valid/directory');
    assert.equal(await verdict(port, 'newcomer@example.com'), 'unknown/directory');
    await ldap.modify('dn: uid=newcomer,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: newcomer\ncn: Newcomer\nsn: Newcomer\nmail: newcomer@example.com\n');
    // The same server by another name: the answers are kept, the unknown one is asked again.
    await writeConfig({ urls: [ldap.url.replace('127.0.0.1', 'localhost')] });
    assert.match(await reload(p), /cache kept/);
    assert.equal(await verdict(port, 'newcomer@example.com'), 'valid/directory');
    // A server with the same base DN that holds none of the recipients: refused before install.
    await writeConfig({ urls: [empty.url] });
    assert.match(await reload(p), /^reload failed.*finds none of/);
    assert.equal(await verdict(port, 'bob@example.com'), 'valid/directory');
  });
});
