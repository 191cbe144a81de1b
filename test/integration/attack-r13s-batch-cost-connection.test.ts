/**
 * A batch whose answer costs its connection (entries over 32 MB in all, so the reader closes it)
 * was asked again as the same batch, failed the same way, and every key in it was deferred: the
 * users batched beside one huge entry got tempfail. Its keys are now asked again singly. Real
 * slapd answers; the proxy stands in for the huge entry (a real one needs hundreds of thousands
 * of values): after each answer that holds carol's entry it puts five 8 MB entries under the
 * same message ID.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, protocolOpOffset, type FaultProxy } from '../helpers/fault-proxy.js';
import { messageIdOf, searchEntry } from '../helpers/r13k-ber.js';

const SEARCH_ENTRY = 0x64;
const CAROL_DN = 'uid=carol,ou=people,dc=example,dc=com';

describe('a batch whose answer costs its connection (real slapd behind a proxy)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '10s', poolSize: 1, maxInFlightPerConnection: 1 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('the users asked beside the huge entry are answered; only its own key is deferred', async () => {
    assert.equal((await directory.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
    let injected = 0;
    proxy.onServerMessage = (conn, msg) => {
      if (msg[protocolOpOffset(msg)] !== SEARCH_ENTRY || !msg.includes(Buffer.from(CAROL_DN))) return;
      const id = messageIdOf(msg);
      const entry = searchEntry(id, CAROL_DN, { mail: ['carol.mixed@example.com'], description: [Buffer.alloc(8 * 1024 * 1024, 0x61)] });
      for (let i = 0; i < 5; i++) conn.inject(entry);
      injected++;
    };
    // One search in flight at a time: while the first is answered, the others queue and leave as one batch.
    const first = directory.lookup('alice@example.com');
    await sleep(0);
    const batched = ['bob@example.com', 'Carol.Mixed@example.com', 'first-last@example.com', 'user1@example.com', 'user2@example.com'].map((a) =>
      directory.lookup(a).then(
        (r) => ({ address: a, found: r.entry?.canonical ?? null, error: null as string | null }),
        (e: Error) => ({ address: a, found: null, error: e.message }),
      ),
    );
    assert.equal((await first).entry?.canonical, 'alice@example.com');
    const results = await Promise.all(batched);
    proxy.onServerMessage = null;
    assert.ok(injected >= 1, 'the huge entries were sent');
    const innocent = results.filter((r) => r.address !== 'Carol.Mixed@example.com');
    assert.deepEqual(
      innocent.map((r) => [r.address, r.found, r.error]),
      innocent.map((r) => [r.address, r.address, null]),
      'every user batched beside the huge entry is found',
    );
    const carol = results.find((r) => r.address === 'Carol.Mixed@example.com')!;
    assert.equal(carol.found, null);
    assert.ok(carol.error, 'the key whose answer is over the bound is deferred (an error), never unknown');
  });
});
