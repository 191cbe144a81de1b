/**
 * A SIGHUP during a directory outage that changes only `domains` (a domain added, one removed,
 * the list turned into a map with per-domain rules). The reload counted any change of domains
 * as another directory and flushed the answer cache: every recipient of the unchanged domains,
 * served from the cache through the outage, became `tempfail`. The answers of the domains still
 * served are now kept; those of a removed domain are dropped (and do not come back when it is
 * served again). Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a reload that changes only the domains, during an outage (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11b-domains-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cfg = () => path.join(dir, 'rcptgate.yaml');
  const writeConfig = (domains: unknown, cache: Record<string, unknown> = {}) =>
    writeFile(
      cfg(),
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains,
        cache,
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
      }),
    );
  const verdict = async (port: number, address: string) => {
    const body = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string; source: string; enforcedVerdict?: string };
    return `${body.enforcedVerdict ?? body.verdict}/${body.source}`;
  };
  const reload = async (p: ServeProcess): Promise<string> => {
    const seen = p.logs.length;
    p.child.kill('SIGHUP');
    const line = await p.waitForLog((l) => p.logs.indexOf(l) >= seen && typeof l.msg === 'string' && /^(configuration reloaded|reload failed)/.test(l.msg));
    return String(line.msg);
  };

  test('the cached answers of the domains still served are kept; a removed domain loses its own', async () => {
    const idn = 'info@xn--bcher-kva.example';
    await writeConfig(['example.com', 'example.org', 'xn--bcher-kva.example']);
    serve = startServe(['--config', cfg()], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    const users = ['alice@example.com', 'bob@example.com', 'dave@example.org', idn];
    for (const u of users) assert.equal(await verdict(port, u), 'valid/directory', u);
    assert.equal(await verdict(port, 'nobody@example.com'), 'unknown/directory');
    await ldap.stop();
    try {
      // A domain added, one removed, and the list becomes a map with a rule for example.org.
      await writeConfig({ 'example.com': {}, 'example.org': { mode: 'shadow' }, 'new.example': {} });
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      const kept = [];
      for (const u of users.slice(0, 3)) kept.push(await verdict(port, u));
      assert.deepEqual(kept, ['valid/cache', 'valid/cache', 'valid/cache'], 'a change of domains alone flushed the answers the outage was served from');
      assert.equal(await verdict(port, 'nobody@example.com'), 'unknown/cache');
      assert.equal(await verdict(port, idn), 'not_ours/static');
      assert.equal(await verdict(port, 'someone@new.example'), 'tempfail/directory', 'nothing is cached for an added domain');
      // Served again: its answers of before are gone, not revived.
      await writeConfig(['example.com', 'example.org', 'xn--bcher-kva.example']);
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      assert.equal(await verdict(port, idn), 'tempfail/directory');
      assert.equal(await verdict(port, 'alice@example.com'), 'valid/cache');
    } finally {
      await ldap.start();
    }
  });

  test('a new cache.maxEntries keeps the cached answers (the most recent ones when smaller)', async () => {
    await serve?.kill();
    await writeConfig(['example.com'], { maxEntries: 1000 });
    serve = startServe(['--config', cfg()], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    const users = ['alice@example.com', 'bob@example.com', 'mallory@example.com'];
    for (const u of users) assert.equal(await verdict(port, u), 'valid/directory', u);
    await ldap.stop();
    try {
      // Evictions seen during the outage: the operator raises the size.
      await writeConfig(['example.com'], { maxEntries: 5000 });
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      const after = [];
      for (const u of users) after.push(await verdict(port, u));
      assert.deepEqual(after, ['valid/cache', 'valid/cache', 'valid/cache'], 'a new cache size flushed the answers the outage was served from');
      // Smaller than what is cached: the most recently used answers stay.
      await writeConfig(['example.com'], { maxEntries: 2 });
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      assert.deepEqual([await verdict(port, 'bob@example.com'), await verdict(port, 'mallory@example.com')], ['valid/cache', 'valid/cache']);
      assert.equal(await verdict(port, 'alice@example.com'), 'tempfail/directory');
    } finally {
      await ldap.start();
    }
  });
});
