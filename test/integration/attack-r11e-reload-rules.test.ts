/**
 * SIGHUPs during a directory outage that change a domain's rules or its spelling, not the
 * directory. A cached answer is the directory's word on one address; every rule (catch-all,
 * shadow mode, onDirectoryError, alwaysValid) is applied on top of it at each lookup, and no
 * answer reached by a rule is cached. So re-ruling a domain neither drops its cached answers
 * (valid users stay deliverable through the outage) nor leaves a rule's verdict behind once
 * the rule is gone; and one domain spelled another way (U-label, upper case, trailing dot) is
 * the same domain. Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('reloads that re-rule or re-spell a domain, during an outage (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11e-rules-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cfg = () => path.join(dir, 'rcptgate.yaml');
  const writeConfig = (domains: unknown) =>
    writeFile(
      cfg(),
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains,
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
      }),
    );
  /** "enforced verdict/source", with "(shadow)" when shadow mode answered valid instead. */
  const verdict = async (port: number, address: string) => {
    const body = (await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${encodeURIComponent(address)}`)).json()) as { verdict: string; source: string; shadow?: boolean; enforcedVerdict?: string };
    return `${body.enforcedVerdict ?? body.verdict}/${body.source}${body.shadow ? ' (shadow)' : ''}`;
  };
  const reload = async (p: ServeProcess): Promise<string> => {
    const seen = p.logs.length;
    p.child.kill('SIGHUP');
    const line = await p.waitForLog((l) => p.logs.indexOf(l) >= seen && typeof l.msg === 'string' && /^(configuration reloaded|reload failed)/.test(l.msg));
    return String(line.msg);
  };
  const verdicts = async (port: number, addresses: string[]) => Promise.all(addresses.map((a) => verdict(port, a)));

  test('catch-all, shadow and onDirectoryError come and go over the cached answers; a re-spelled IDN domain keeps its own', async () => {
    await writeConfig(['example.com', 'Bücher.example']);
    serve = startServe(['--config', cfg()], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    const idn = 'info@xn--bcher-kva.example';
    assert.deepEqual(await verdicts(port, ['alice@example.com', 'nobody@example.com', idn]), ['valid/directory', 'unknown/directory', 'valid/directory']);
    await ldap.stop();
    try {
      // example.com becomes catch-all; the IDN domain is spelled in upper case with a trailing dot.
      await writeConfig({ 'example.com': { catchAll: true }, 'BÜCHER.example.': {} });
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      assert.deepEqual(await verdicts(port, ['nobody@example.com', 'fresh@example.com', idn, 'info@bücher.example']), ['valid/static', 'valid/static', 'valid/cache', 'valid/cache']);
      // Catch-all gone, shadow mode with onDirectoryError accept: the directory's answers again.
      await writeConfig({ 'example.com': { mode: 'shadow', onDirectoryError: 'accept' }, 'xn--bcher-kva.example': {} });
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      assert.deepEqual(await verdicts(port, ['alice@example.com', 'nobody@example.com', 'fresh@example.com', idn]), [
        'valid/cache (shadow)',
        'unknown/cache (shadow)',
        'valid/directory (shadow)',
        'valid/cache',
      ]);
      // Back to plain enforcement: no verdict of a rule was left in the cache.
      await writeConfig(['example.com', 'bücher.example']);
      assert.match(await reload(serve), /^configuration reloaded, cache kept/);
      assert.deepEqual(await verdicts(port, ['alice@example.com', 'nobody@example.com', 'fresh@example.com', idn]), ['valid/cache', 'unknown/cache', 'tempfail/directory', 'valid/cache']);
    } finally {
      await ldap.start();
    }
  });
});
