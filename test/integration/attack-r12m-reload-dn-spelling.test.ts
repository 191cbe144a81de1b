/**
 * A SIGHUP after the base DN or bind DN was respaced (`dc=example, dc=com`, as Postfix's
 * ldap_table(5) examples write it) or recased: the same tree and account, but the reload counted
 * it as another directory and flushed the answer cache, so an outage after it found nothing to
 * serve from and deferred every recipient it had confirmed. Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { verdictOf } from '../helpers/http-verdict.js';

describe('a reload that only respaces the base DN and bind DN (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;
  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12m-dn-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cfg = () => path.join(dir, 'rcptgate.json');
  const writeConfig = (baseDN: string, bindDN: string) =>
    writeFile(
      cfg(),
      JSON.stringify({
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN, bindDN, timeout: '1s' } },
      }),
    );
  const respaced = (dn: string) => dn.replace(/,/g, ', ').replace(/dc=/g, 'DC=');

  test('the cached answers are kept, and serve through an outage after it', async () => {
    await writeConfig(ldap.baseDN, ldap.serviceDN);
    serve = startServe(['--config', cfg()], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    for (const u of ['alice@example.com', 'bob@example.com']) assert.equal(await verdictOf(port, u), 'valid/directory', u);
    await new Promise((r) => setTimeout(r, 300)); // the config file settled
    await writeConfig(respaced(ldap.baseDN), respaced(ldap.serviceDN));
    const seen = serve.logs.length;
    serve.child.kill('SIGHUP');
    const line = await serve.waitForLog((l) => serve!.logs.indexOf(l) >= seen && typeof l.msg === 'string' && /^(configuration reloaded|reload failed)/.test(l.msg));
    assert.equal(line.msg, 'configuration reloaded, cache kept');
    await ldap.stop();
    try {
      for (const u of ['alice@example.com', 'bob@example.com']) assert.equal(await verdictOf(port, u), 'valid/cache', u);
    } finally {
      await ldap.start();
    }
  });
});
