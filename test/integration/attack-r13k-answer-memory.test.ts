/**
 * Memory a lookup's answer may take, whatever the directory sends. One message was bounded (32
 * MB) and so was the number of entries (the size limit asked), but not their sum: sixteen
 * entries of 8 MB for one lookup were all read and kept until its result came (160 MB more in
 * use, with the garbage of reading them), and a batch asks for sixteen per key. A hostile or
 * broken server, or whatever sits in front of it, could take the service's memory by hundreds
 * of megabytes per search. Real slapd answers; the proxy puts the large entries under the
 * lookup's message ID ahead of slapd's own answer (slapd sends none such).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { messageIdOf, searchEntry } from '../helpers/r13k-ber.js';

const VALUE_BYTES = 8 * 1024 * 1024;
const INJECTED = 15; // with slapd's own entry: 16, the size limit of a lone lookup

describe('a lookup answered with many large entries (real slapd behind a proxy)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '10s', poolSize: 1 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('reading stops once the entries pass 32 MB in all, before the whole answer is held; the lookup is asked again and answered right', async () => {
    assert.equal((await directory.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
    const conn = proxy.open()[0]!;
    conn.hold();
    let id = -1;
    proxy.onServerMessage = (_, msg) => {
      if (id < 0) id = messageIdOf(msg);
    };
    const value = Buffer.alloc(VALUE_BYTES, 0x61);
    const lookup = directory.lookup('bob@example.com');
    while (id < 0) await sleep(5);
    proxy.onServerMessage = null;
    // One buffer written again and again: the proxy itself holds one entry, not fifteen.
    const entry = searchEntry(id, 'uid=bob,ou=people,dc=example,dc=com', { mail: ['bob@example.com'], description: [value] });
    for (let i = 0; i < INJECTED; i++) conn.inject(entry);
    conn.release();
    assert.equal((await lookup).entry?.canonical, 'bob@example.com');
    assert.ok(proxy.connections[0]!.closed, 'the connection was closed before the whole answer was read');
    assert.equal(proxy.connections.length, 2, 'the lookup was answered on a new connection');
  });
});
