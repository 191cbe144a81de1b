/**
 * Memory of the sync's own connection (the directory's clock, change listings, re-reads, AD
 * tombstones), whatever the server sends. It was read by ldapts alone, which keeps buffering a
 * message whatever length its header announces, copying the whole buffer again at every chunk,
 * until the request times out: a broken or hostile server (or whatever sits in front of it)
 * could take the service's memory and a core for the whole timeout. It is now read as lookups
 * are: a message announced over 32 MB closes the connection at once. Real slapd; the proxy puts
 * the oversized message in the stream (slapd sends none such).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { LdapSession } from '../../src/snapshot/ldap-session.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const CHUNK = Buffer.alloc(1024 * 1024, 0x61);

describe("the sync session's memory against a server announcing a huge message (real slapd behind a proxy)", () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  test('a message announced at 2 GB closes the connection before 32 MB of it is read; the request fails, the next session works', async () => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '20s' } },
    }).directory.ldap;
    const session = await LdapSession.open(config, slapd.servicePassword);
    try {
      assert.ok(await session.entry(slapd.baseDN, ['dc']), 'the session reads the base');
      const conn = proxy.open()[0]!;
      const pending = session.entry(slapd.baseDN, ['dc']).then(
        () => 'answered',
        (e: Error) => e.message,
      );
      // An LDAP message (SEQUENCE) whose length field says 0x7fffffff bytes follow.
      conn.inject(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]));
      let sent = 0;
      while (!conn.closed && sent < 48) {
        conn.inject(CHUNK);
        sent++;
        await sleep(20);
      }
      assert.ok(conn.closed, `the connection still open after ${sent} MB of one message`);
      assert.ok(sent < 32, `${sent} MB were sent before it closed`);
      const outcome = await pending;
      assert.notEqual(outcome, 'answered', 'the request on the broken stream fails');
    } finally {
      await session.close();
    }
    const next = await LdapSession.open(config, slapd.servicePassword);
    try {
      assert.ok(await next.entry(slapd.baseDN, ['dc']), 'a new session reads the base again');
    } finally {
      await next.close();
    }
  });
});
