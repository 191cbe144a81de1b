/**
 * A page with no entry that still carries a cookie (Active Directory sends such pages: a page's
 * share of the search found nothing it may return, the rest is still to come). Full listings go on
 * past it (directory/paged.ts); the searches of incremental syncs (entries changed and no longer
 * valid, deleted objects, entries moved out of the base, change stamps) stopped there, so a user
 * disabled or deleted after such a page stayed valid until the next full sync. slapd fills every
 * page but the last, so a proxy empties its first page of a real paged search. Real slapd.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { LdapSession } from '../../src/snapshot/ldap-session.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { protocolOpOffset, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

describe('incremental-sync searches past a page with no entry and a cookie (real slapd)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 12 });
    proxy = await startFaultProxy(slapd.port);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test('every page after it is read', async () => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '3s' } },
    }).directory.ldap;
    const session = await LdapSession.open(config, slapd.servicePassword);
    const filter = '(&(objectClass=inetOrgPerson)(uid=user*))';
    try {
      const all = (await session.search(slapd.baseDN, 'sub', filter, ['mail'], [], 4)).map((e) => e.dn);
      assert.equal(all.length, 12);
      // The session's next search (its base already read): its first page emptied.
      let done = 0;
      proxy.transform = (msg) => {
        const op = msg[protocolOpOffset(msg)];
        if (op === 0x65) done++;
        return op === 0x64 && done === 0 ? null : msg;
      };
      const seen = (await session.search(slapd.baseDN, 'sub', filter, ['mail'], [], 4)).map((e) => e.dn);
      assert.equal(seen.length, 8, `entries after the empty first page: ${seen.length} of the 8 on the pages after it`);
      assert.deepEqual(seen, all.slice(4));
    } finally {
      proxy.transform = null;
      await session.close();
    }
  });
});
