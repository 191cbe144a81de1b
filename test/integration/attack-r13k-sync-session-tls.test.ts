/**
 * The connection the snapshot's incremental syncs open for the directory's clock and removals
 * (LdapSession), over StartTLS. Its StartTLS named no server (SNI), unlike the lookup pool's: a
 * directory that picks its certificate by the name asked for (several names on one server, a TLS
 * front end) showed the sync another certificate than the lookups, and every incremental sync
 * failed ("keeping the current snapshot": new users unknown until the next full sync) while
 * lookups worked. Also held: a certificate that does not name the host is refused, and a first URL
 * failing so leaves the sync to the second (LDAPS), as the pool does. Real slapd with TLS; a proxy
 * on 127.0.0.2 is the same server under a name its certificate lacks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { LdapSession } from '../../src/snapshot/ldap-session.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

function ldapConfig(slapd: Slapd, urls: string[]) {
  return configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s', startTLS: true, tls: { caFile: slapd.caFile! } } },
  }).directory.ldap;
}

describe('the sync session with StartTLS failing at the first URL and LDAPS at the second (real slapd)', () => {
  let slapd: Slapd;
  let wrongName: FaultProxy;
  let named: FaultProxy;
  before(async () => {
    slapd = await startSlapd({ tls: true });
    wrongName = await startFaultProxy(slapd.port, { host: '127.0.0.2' });
    named = await startFaultProxy(slapd.port);
  });
  after(async () => {
    await wrongName?.close();
    await named?.close();
    await slapd?.close();
  });

  test('refuses a certificate that does not name the host; binds at the second URL and reads the base, as the lookup pool does', async () => {
    await assert.rejects(LdapSession.open(ldapConfig(slapd, [wrongName.url]), slapd.servicePassword), /127\.0\.0\.2|certificate|altnames/i);
    const session = await LdapSession.open(ldapConfig(slapd, [wrongName.url, slapd.ldapsUrl!]), slapd.servicePassword);
    try {
      const base = await session.entry(slapd.baseDN, ['dc']);
      assert.equal(base?.dn, slapd.baseDN);
    } finally {
      await session.close();
    }
  });

  test('StartTLS names the server in the URL (SNI), as the lookup pool does', async () => {
    named.record = true;
    const url = `ldap://localhost:${named.port}`;
    const session = await LdapSession.open(ldapConfig(slapd, [url]), slapd.servicePassword);
    await session.close();
    const sent = Buffer.concat(named.sent);
    assert.ok(sent.length > 0);
    assert.notEqual(sent.indexOf('localhost'), -1, 'the ClientHello names localhost');
  });
});
